"""The Flask app served by `http`: `/` returns the integration document, serialised by orjson on every request.

INTEGRATION_WSGI_FAULT (for the suite's own tests) makes it misbehave: `status-500`, `wrong-body`,
`wrong-content-type`.
"""

import os

import orjson
from flask import Flask, Response

from document import document

app = Flask(__name__)
FAULT = os.environ.get("INTEGRATION_WSGI_FAULT", "")
DOCUMENT = document()


@app.get("/")
def index() -> Response:
    body = orjson.dumps(DOCUMENT)
    if FAULT == "status-500":
        return Response(body, status=500, mimetype="application/json")
    if FAULT == "wrong-body":
        return Response(orjson.dumps({**DOCUMENT, "title": "not the document"}), mimetype="application/json")
    if FAULT == "wrong-content-type":
        return Response(body, mimetype="text/plain")
    return Response(body, mimetype="application/json")
