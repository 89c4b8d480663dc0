//! Irun.toml as written: serde structs that keep each value's place in the file (for error messages), and from
//! which `irun schema` derives the JSON Schema. A key is added here and in [`super::model`], nothing else: the
//! schema, the keys a group may not have and the keys only a service may have all follow from these structs.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;

/// A value and where it is written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub(crate) struct At<T>(toml::Spanned<T>);

impl<T> At<T> {
    pub(crate) fn span(&self) -> Range<usize> {
        self.0.span()
    }

    pub(crate) fn get(&self) -> &T {
        self.0.get_ref()
    }

    pub(crate) fn new(span: Range<usize>, value: T) -> At<T> {
        At(toml::Spanned::new(span, value))
    }
}

/// In the schema, a value is what it holds: where it is written is the parser's business.
impl<T: JsonSchema> JsonSchema for At<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

impl<T: PartialEq> PartialEq for At<T> {
    fn eq(&self, other: &At<T>) -> bool {
        self.get() == other.get()
    }
}

impl<T: Eq> Eq for At<T> {}

impl<T: Ord> PartialOrd for At<T> {
    fn partial_cmp(&self, other: &At<T>) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T: Ord> Ord for At<T> {
    fn cmp(&self, other: &At<T>) -> std::cmp::Ordering {
        self.get().cmp(other.get())
    }
}

/// Declares a table's struct with every key optional, and `given()`: the keys present, with where their values are
/// written, so rules about which keys go together need no list of their own.
macro_rules! table {
    ($(#[$meta:meta])* struct $name:ident { $($(#[$field_meta:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        pub(crate) struct $name {
            $($(#[$field_meta])* #[serde(default)] pub(crate) $field: Option<At<$ty>>,)*
        }

        impl $name {
            /// Every key given, with the place of its value, in the order they are written.
            pub(crate) fn given(&self) -> Vec<(&'static str, Range<usize>)> {
                let mut keys = Vec::new();
                $(if let Some(value) = &self.$field {
                    keys.push((stringify!($field), value.span()));
                })*
                keys.sort_by_key(|(_, span)| span.start);
                keys
            }

            /// Whether any of `names` is given (without making the list [`Self::given`] makes).
            #[allow(dead_code)]
            pub(crate) fn has_any(&self, names: &[&str]) -> bool {
                false $(|| (self.$field.is_some() && names.contains(&stringify!($field))))*
            }
        }
    };
}

/// Tasks, services and their dependencies for irun, a make-like task runner.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Irun.toml")]
pub(crate) struct RawConfig {
    /// Targets run when none are named on the command line.
    pub(crate) default: Option<Vec<At<String>>>,
    /// How many tasks may run at once (default: the number of CPUs; -j overrides).
    #[schemars(range(min = 1))]
    pub(crate) jobs: Option<At<i64>>,
    /// dotenv files for every task, relative to the directory holding Irun.toml: their NAME=value lines are added
    /// to each task's environment (a variable irun's environment already has keeps its value; later files win) and
    /// can be used as ${NAME}. A path written "?.env.local" is optional.
    #[serde(default)]
    #[schemars(schema_with = "dotenv_files")]
    pub(crate) dotenv: Option<At<Vec<At<String>>>>,
    /// Environment added to every task.
    #[serde(default)]
    #[schemars(schema_with = "environment")]
    pub(crate) env: BTreeMap<String, At<toml::Value>>,
    /// Variables of irun's own environment that count in every task's cache key (besides the ones Irun.toml sets,
    /// which always do): a task restored from the cache is one whose command saw the same values. Tasks add theirs
    /// with their own `cache_env`.
    #[serde(default)]
    #[schemars(schema_with = "variable_names")]
    pub(crate) cache_env: Option<At<Vec<At<String>>>>,
    /// The tasks, by name.
    #[serde(default, deserialize_with = "tasks")]
    #[schemars(with = "BTreeMap<String, RawTask>", extend("propertyNames" = { "pattern": "\\S" }))]
    pub(crate) tasks: Vec<NamedTask>,
}

/// A task's name, where it is written, and the task.
pub(crate) type NamedTask = (At<String>, Box<RawTask>);

/// The tasks as the file's table hands them over: a list, not a map that would compare names to sort them (the
/// file's order is the one that counts, and TOML already refuses a name given twice). Boxed, so that putting
/// them in that order moves little.
fn tasks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<NamedTask>, D::Error> {
    struct Tasks;
    impl<'de> serde::de::Visitor<'de> for Tasks {
        type Value = Vec<NamedTask>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            // What serde says of a map, as it did when this was one.
            f.write_str("a map")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(entry) = map.next_entry()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Tasks)
}

table! {
    /// A task (a `cmd` run to its end), a service (`daemon = true`: kept running while needed) or a group (no `cmd`:
    /// it gathers `deps`).
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(rename = "task", transform = group_and_service_rules)]
    struct RawTask {
        /// Shown by `irun list`.
        description: String,
        #[schemars(schema_with = "command")]
        cmd: toml::Value,
        /// Tasks that must finish (services: be ready) first.
        deps: Vec<At<String>>,
        /// Environment for this task, overriding [env].
        #[schemars(schema_with = "environment")]
        env: BTreeMap<String, At<toml::Value>>,
        /// dotenv files for this task, read after the top-level ones (see the top-level `dotenv`).
        #[schemars(schema_with = "dotenv_files")]
        dotenv: Vec<At<String>>,
        /// Which variables of the top-level [env] and `dotenv` files the task receives: true (default) all of
        /// them, false none, or an array of their names. Only those count in its fingerprint; ${NAME} in its own
        /// `env` and `cmd` still finds them all.
        #[schemars(schema_with = "inherit_env")]
        inherit_env: toml::Value,
        /// Where the command runs, relative to the directory holding Irun.toml.
        #[schemars(regex(pattern = r"\S"))]
        cwd: String,
        /// Stop the task and fail it when it runs longer.
        #[schemars(schema_with = "duration")]
        timeout: String,
        /// Inputs: for up-to-date checks and watch mode.
        #[schemars(schema_with = "globs")]
        sources: Vec<At<String>>,
        /// Files the task writes: for up-to-date checks; ignored by watch mode.
        #[schemars(schema_with = "globs")]
        outputs: Vec<At<String>>,
        /// JUnit XML files the task's command writes (pytest's `--junitxml`, jest-junit, surefire): after each run,
        /// those it wrote in that run are read and their test cases nested under the task in irun's reports
        /// (`--junit`, `--json`). Globs as in `outputs`; ignored by watch mode. Only for tasks, not services.
        #[schemars(schema_with = "globs")]
        junit: Vec<At<String>>,
        /// A service: runs until nothing needs it any more.
        daemon: bool,
        // Boxed: few tasks have one.
        ready: Box<RawReady>,
        /// Signal that stops the task's process group (default SIGTERM); one that ends a process.
        #[schemars(schema_with = "stop_signal")]
        stop_signal: String,
        /// Grace after stop_signal before SIGKILL (default 5s).
        #[schemars(schema_with = "duration")]
        stop_timeout: String,
        /// Run even when up to date.
        always_run: bool,
        /// `false`: the task is never restored from the cache nor stored in it (a task is cached by default when it
        /// has `sources` or `outputs`; services never are). `true`: cached even when an output is a plain path no
        /// glob covers (a marker such as `.venv/pyvenv.cfg` is not cached by default): its `outputs` are its whole
        /// result.
        cache: bool,
        /// Variables of irun's own environment that count in the task's cache key, added to the top-level
        /// `cache_env`. Others it inherits do not: name those its result depends on (`CC`, `NODE_ENV`).
        #[schemars(schema_with = "variable_names")]
        cache_env: Vec<At<String>>,
        /// `false`: the task's output is not stored with its cached result (keep logs out of a shared cache); a
        /// result restored from the cache then shows a line saying its output was not kept.
        cache_output: bool,
        /// A service whose readiness probe (tcp, http or exec) already passes before irun starts it is used as it
        /// is: irun neither starts nor stops it, and says so.
        reuse: bool,
        /// `live` (default): output as it comes (or, with --output grouped, when the task ends). `on-failure`: held
        /// back and shown only if the task fails (a service: fails or never becomes ready).
        #[schemars(schema_with = "output_policy")]
        output: String,
        /// `false`: the task is not given FORCE_COLOR=1 and CLICOLOR_FORCE=1, which it otherwise gets (unless its
        /// environment already has them) when irun colours its own output for a human: stdout a terminal (not with
        /// --json), or --color always. Set it for a task that writes its output into a file (`eslint . > lint.txt`):
        /// the tools would write colour codes into the file.
        color: bool,
        /// Start the service again when its process exits: `on-failure` after a non-zero exit code or a signal,
        /// `always` after any exit; `no` (default) fails it. Pauses 100ms before the first restart, doubling each
        /// time (at most 10s); tasks that need the service wait meanwhile.
        #[schemars(schema_with = "restart_policy")]
        restart: String,
        /// How many restarts at most (default 3); the next exit fails the service.
        #[schemars(range(min = 0))]
        max_restarts: i64,
        /// "auto": a free port chosen as the service starts, given to it as IRUN_PORT and to it and every task
        /// after it as IRUN_PORT_<NAME>; any probe, `env` value or command may use ${IRUN_PORT}.
        #[schemars(schema_with = "port_choice")]
        port: String,
        /// A task (not a service) that talks to the terminal (ssh, sudo, a prompt): it runs in the terminal's
        /// foreground with irun's stdin, stdout and stderr, its output neither captured nor prefixed; one at a
        /// time. Without a terminal it just gets irun's stdin.
        interactive: bool,
    }
}

/// What a group may have: it gathers its deps (its `sources`, in watch mode, rerun what depends on it).
pub(crate) const GROUP_KEYS: [&str; 3] = ["description", "deps", "sources"];

/// What only a service may have.
pub(crate) const SERVICE_KEYS: [&str; 5] = ["ready", "reuse", "restart", "max_restarts", "port"];

/// What only a task (not a service) may have: services are never cached.
pub(crate) const CACHE_KEYS: [&str; 3] = ["cache", "cache_env", "cache_output"];

table! {
    /// A service's readiness probe: exactly one of tcp, http, exec, log.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(rename = "ready", transform = one_probe)]
    struct RawReady {
        /// A port (on 127.0.0.1 or ::1), "HOST:PORT", or "auto": a free port chosen as the service starts
        /// (IRUN_PORT for the service, IRUN_PORT_<NAME> for it and its dependents). A string may use ${NAME}, e.g.
        /// "${PORT}".
        #[schemars(schema_with = "tcp_address")]
        tcp: toml::Value,
        /// A plain-http URL answering 2xx or 3xx (or `status`) when the service is ready.
        #[schemars(regex(pattern = r"^(http://|\$\{)"))]
        http: String,
        /// The HTTP status the `http` probe waits for.
        #[schemars(range(min = 100, max = 599))]
        status: i64,
        /// A command that exits 0 once the service is ready.
        #[schemars(schema_with = "command")]
        exec: toml::Value,
        /// A regular expression matched against each line of output.
        log: String,
        /// How often the probe is tried (not for `log`).
        #[schemars(schema_with = "duration")]
        interval: String,
        /// How long the service may take to become ready (default 30s).
        #[schemars(schema_with = "duration")]
        timeout: String,
    }
}

/// The probes of `ready`: a service has exactly one.
pub(crate) const PROBE_KEYS: [&str; 4] = ["tcp", "http", "exec", "log"];

// -- the value shapes the schema describes (irun checks each one itself, with a message that says where) --------

fn command(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "A string runs with `sh -c`; an array is executed directly.",
        "oneOf": [
            { "type": "string", "pattern": "\\S" },
            {
                "type": "array",
                "items": { "type": "string" },
                "minItems": 1,
                "prefixItems": [{ "type": "string", "pattern": "\\S" }]
            }
        ]
    })
}

fn environment(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": { "type": ["string", "integer", "number", "boolean"] },
        "propertyNames": { "pattern": "^[^=\\u0000]+$" }
    })
}

fn dotenv_files(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "array", "items": { "type": "string", "minLength": 1 } })
}

fn variable_names(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "type": "string", "pattern": "^[^=\\u0000]+$" },
        "uniqueItems": true
    })
}

fn inherit_env(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "oneOf": [
            { "type": "boolean" },
            { "type": "array", "items": { "type": "string", "minLength": 1 }, "uniqueItems": true }
        ]
    })
}

fn duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "A humantime duration: \"500ms\", \"5s\", \"2m\", \"1h 30m\".",
        "type": "string",
        "pattern": "^\\s*[0-9]"
    })
}

fn globs(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Globs relative to the directory holding Irun.toml; `*` stays within a folder, `**` crosses folders; `!glob` excludes what the globs before it matched.",
        "type": "array",
        "items": { "type": "string", "not": { "pattern": "^(!$|!?(/|\\.\\./|\\.\\.$))" } },
        "anyOf": [{ "maxItems": 0 }, { "contains": { "pattern": "^[^!]" } }]
    })
}

/// The signals that end a process, any case, with or without `SIG`.
fn stop_signal(_: &mut SchemaGenerator) -> Schema {
    const SIGNALS: [&str; 24] = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM",
        "TERM", "STKFLT", "XCPU", "XFSZ", "VTALRM", "PROF", "IO", "PWR", "SYS", "IOT",
    ];
    let any_case = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphabetic() { format!("[{}{}]", c, c.to_ascii_lowercase()) } else { c.to_string() })
            .collect()
    };
    let names: Vec<String> = SIGNALS.iter().chain(&["POLL"]).map(|s| any_case(s)).collect();
    let pattern = format!("^({})?({})$", any_case("SIG"), names.join("|"));
    json_schema!({ "type": "string", "pattern": pattern })
}

fn output_policy(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "enum": ["live", "on-failure"] })
}

fn port_choice(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "enum": ["auto"] })
}

fn restart_policy(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "enum": ["no", "on-failure", "always"] })
}

fn tcp_address(_: &mut SchemaGenerator) -> Schema {
    let port = "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";
    json_schema!({
        "oneOf": [
            { "type": "integer", "minimum": 1, "maximum": 65535 },
            { "type": "string", "pattern": format!("^(auto|.+:{port}|{port}|.*\\$\\{{.*)$") }
        ]
    })
}

/// `required` for one key.
fn has(key: &str) -> serde_json::Value {
    serde_json::json!({ "required": [key] })
}

/// A group (no `cmd`) has deps and nothing else of a task's; `ready`, `reuse`, `restart` and `max_restarts` need
/// `daemon = true`.
fn group_and_service_rules(schema: &mut Schema) {
    let keys: Vec<String> =
        schema.get("properties").and_then(|p| p.as_object()).map(|p| p.keys().cloned().collect()).unwrap_or_default();
    let process_keys: Vec<serde_json::Value> =
        keys.iter().filter(|k| *k != "cmd" && !GROUP_KEYS.contains(&k.as_str())).map(|k| has(k)).collect();
    let service_only: serde_json::Map<String, serde_json::Value> = SERVICE_KEYS
        .iter()
        .map(|k| {
            let mut required = vec!["daemon"];
            if *k == "reuse" {
                required.push("ready");
            }
            (k.to_string(), serde_json::json!({ "required": required, "properties": { "daemon": { "const": true } } }))
        })
        .collect();
    let rules = serde_json::json!([
        {
            "if": { "not": has("cmd") },
            "then": {
                "description": "A group (no cmd) gathers deps and has no process settings.",
                "required": ["deps"],
                "properties": { "deps": { "minItems": 1 } },
                "not": { "anyOf": process_keys }
            }
        },
        { "dependentSchemas": service_only }
    ]);
    let mut rules = rules;
    if let Some(rules) = rules.as_array_mut() {
        rules.push(not_a_service_if_interactive());
        rules.push(a_service_is_never_cached());
        rules.push(a_service_has_no_junit_reports());
    }
    schema.insert("allOf".into(), rules);
}

/// `interactive = true` is for a task, not a service.
fn not_a_service_if_interactive() -> serde_json::Value {
    let set = |key: &str| serde_json::json!({ "required": [key], "properties": { key: { "const": true } } });
    serde_json::json!({ "if": set("interactive"), "then": { "not": set("daemon") } })
}

/// `cache = true`, `cache_env` and `cache_output` are for a task: a service is never cached.
fn a_service_is_never_cached() -> serde_json::Value {
    let service = serde_json::json!({ "required": ["daemon"], "properties": { "daemon": { "const": true } } });
    let cached = serde_json::json!({ "required": ["cache"], "properties": { "cache": { "const": true } } });
    serde_json::json!({ "if": service, "then": { "not": { "anyOf": [cached, has("cache_env"), has("cache_output")] } } })
}

/// `junit` is for a task: a service runs until it is no longer needed, and its end is no test run.
fn a_service_has_no_junit_reports() -> serde_json::Value {
    let service = serde_json::json!({ "required": ["daemon"], "properties": { "daemon": { "const": true } } });
    serde_json::json!({ "if": service, "then": { "not": has("junit") } })
}

/// Exactly one probe; `status` only with `http`; no `interval` with `log`.
fn one_probe(schema: &mut Schema) {
    let probes: Vec<serde_json::Value> = PROBE_KEYS.iter().map(|k| has(k)).collect();
    schema.insert("oneOf".into(), probes.into());
    schema.insert("dependentSchemas".into(), serde_json::json!({ "status": has("http") }));
    schema.insert("allOf".into(), serde_json::json!([{ "if": has("log"), "then": { "not": has("interval") } }]));
}
