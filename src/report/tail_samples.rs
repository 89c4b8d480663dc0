//! Real output of failing tools, for the failure tail's tests: pytest with a warning, Playwright (a timeout and a
//! deep-equality diff), rustc (a warning, then an error), a Python traceback, and warnings that matter: pytest and
//! Python with warnings raised as errors (`-W error`), and node's warning just before Playwright's failure.

pub(super) const PYTEST: &str = "\
============================= test session starts ==============================
platform linux -- Python 3.12.3, pytest-8.2.0, pluggy-1.5.0
rootdir: /app
collected 3 items

tests/test_math.py .F.                                                   [100%]

=================================== FAILURES ===================================
__________________________________ test_adds ___________________________________

    def test_adds():
>       assert add(1, 1) == 3
E       assert 2 == 3
E        +  where 2 = add(1, 1)

tests/test_math.py:7: AssertionError
=============================== warnings summary ===============================
tests/test_math.py::test_old
  /app/tests/test_math.py:12: DeprecationWarning: old_api is deprecated
    warnings.warn(\"old_api is deprecated\", DeprecationWarning)

-- Docs: https://docs.pytest.org/en/stable/how-to/capture-warnings.html
=========================== short test summary info ============================
FAILED tests/test_math.py::test_adds - assert 2 == 3
==================== 1 failed, 2 passed, 1 warning in 0.03s ====================
";

pub(super) const PLAYWRIGHT: &str = "\
Running 2 tests using 1 worker

  ✘  1 [chromium] › e2e/home.spec.ts:3:5 › home page shows the title (5.1s)
  ✘  2 [chromium] › e2e/home.spec.ts:9:5 › counter counts (120ms)

  1) [chromium] › e2e/home.spec.ts:3:5 › home page shows the title ─────────────

    Error: Timed out 5000ms waiting for expect(locator).toHaveText(expected)

    Locator: getByRole('heading')
    Expected string: \"Vite + React!\"
    Received string: \"Vite + React\"
    Call log:
      - expect.toHaveText with timeout 5000ms
      - waiting for getByRole('heading')
        9 × locator resolved to <h1>Vite + React</h1>
          - unexpected value \"Vite + React\"


      3 | test('home page shows the title', async ({ page }) => {
      4 |   await page.goto('/');
    > 5 |   await expect(page.getByRole('heading')).toHaveText('Vite + React!');
        |                                           ^
      6 | });

        at /app/e2e/home.spec.ts:5:43

  2) [chromium] › e2e/home.spec.ts:9:5 › counter counts ────────────────────────

    Error: expect(received).toEqual(expected) // deep equality

    - Expected  - 1
    + Received  + 1

      Object {
    -   \"count\": 3,
    +   \"count\": 2,
      }

      10 |   const state = await page.evaluate(() => window.state);
    > 11 |   expect(state).toEqual({ count: 3 });
         |                 ^

        at /app/e2e/home.spec.ts:11:17

  2 failed
    [chromium] › e2e/home.spec.ts:3:5 › home page shows the title ──────────────
    [chromium] › e2e/home.spec.ts:9:5 › counter counts ─────────────────────────
";

pub(super) const RUSTC: &str = "\
   Compiling app v0.1.0 (/app)
warning: unused variable: `y`
 --> src/main.rs:2:9
  |
2 |     let y = 1;
  |         ^ help: if this is intentional, prefix it with an underscore: `_y`
  |
  = note: `#[warn(unused_variables)]` on by default

error[E0308]: mismatched types
 --> src/main.rs:3:18
  |
3 |     let x: i32 = \"one\";
  |            ---   ^^^^^ expected `i32`, found `&str`
  |            |
  |            expected due to this

For more information about this error, try `rustc --explain E0308`.
warning: `app` (bin \"app\") generated 1 warning
error: could not compile `app` (bin \"app\") due to 1 previous error; 1 warning emitted
";

pub(super) const TRACEBACK: &str = "\
starting import
/app/settings.py:4: UserWarning: DEBUG is on
  warnings.warn(\"DEBUG is on\")
Traceback (most recent call last):
  File \"/app/manage.py\", line 22, in <module>
    main()
  File \"/app/manage.py\", line 18, in main
    execute_from_command_line(sys.argv)
  File \"/app/settings.py\", line 9, in <module>
    DATABASES = {\"default\": env.db(os.environ[\"DATABASE_URL\"])}
                                    ~~~~~~~~~~^^^^^^^^^^^^^^^^
  File \"<frozen os>\", line 714, in __getitem__
KeyError: 'DATABASE_URL'
";

/// `pytest -W error` (or `filterwarnings = error`): the warning is the failure.
pub(super) const PYTEST_W_ERROR: &str = "\
============================= test session starts ==============================
platform linux -- Python 3.12.3, pytest-8.2.0, pluggy-1.5.0
rootdir: /app
configfile: pyproject.toml
collected 2 items

tests/test_api.py F.                                                     [100%]

=================================== FAILURES ===================================
_________________________________ test_old_api _________________________________

    def test_old_api():
>       assert old_api() == 1

tests/test_api.py:5:
_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _

    def old_api():
>       warnings.warn(\"old_api is deprecated\", DeprecationWarning)
E       DeprecationWarning: old_api is deprecated

app/api.py:5: DeprecationWarning
=========================== short test summary info ============================
FAILED tests/test_api.py::test_old_api - DeprecationWarning: old_api is deprecated
========================= 1 failed, 1 passed in 0.02s ==========================
";

/// `python -W error manage.py`: the traceback ends with the warning, raised.
pub(super) const PYTHON_W_ERROR: &str = "\
starting import
Traceback (most recent call last):
  File \"/app/manage.py\", line 22, in <module>
    main()
  File \"/app/manage.py\", line 18, in main
    execute_from_command_line(sys.argv)
  File \"/app/app/settings.py\", line 9, in <module>
    from app.api import old_api
  File \"/app/app/api.py\", line 5, in <module>
    warnings.warn(\"old_api is deprecated\", DeprecationWarning)
DeprecationWarning: old_api is deprecated
";

/// Playwright, with node's deprecation warning (stderr, unbuffered) printed just before the failure's lines.
pub(super) const PLAYWRIGHT_AFTER_NODE_WARNING: &str = "\
Running 1 test using 1 worker

  ✘  1 [chromium] › e2e/count.spec.ts:3:5 › counts (80ms)

  1) [chromium] › e2e/count.spec.ts:3:5 › counts ──────────────────────────────────

(node:4242) [DEP0005] DeprecationWarning: Buffer() is deprecated due to security and usability issues. Please use the Buffer.alloc(), Buffer.allocUnsafe(), or Buffer.from() methods instead.
(Use `node --trace-deprecation ...` to show where the warning was created)
    Error: expect(received).toBe(expected) // Object.is equality

    Expected: 3
    Received: 2

      3 | test('counts', async ({ page }) => {
      4 |   const count = await page.evaluate(() => window.count);
    > 5 |   expect(count).toBe(3);
        |                 ^
      6 | });

        at /app/e2e/count.spec.ts:5:17

  1 failed
    [chromium] › e2e/count.spec.ts:3:5 › counts ───────────────────────────────────
";
