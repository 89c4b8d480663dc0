//! Irun.toml-shaped documents, arbitrary text and arbitrary bytes through everything that reads Irun.toml.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use crate::config::parse;
use crate::diagnostic::Source;
use crate::request::{Request, plan};

/// What sees untrusted text: parsing, the graph (DOT and Mermaid), the listing, and planning every task. Errors
/// are fine; panics are not. What loads is read back from `.irun/` exactly as it was.
fn load(text: &str) {
    let Ok(config) = parse(Source::new(Path::new("Irun.toml"), text), PathBuf::from("/p")) else { return };
    let declared = |c: &crate::config::Config| format!("{:?}", (&c.default, c.jobs, &c.tasks));
    let back = crate::config::stored_and_read_back(&config).expect("a loaded Irun.toml reads back");
    assert_eq!(declared(&back), declared(&config));
    let _ = super::graph::text(&config, &[], false, false);
    let _ = super::graph::text(&config, &[], true, false);
    let _ = super::list::text(&config, true, false, false);
    let _ = super::list::text(&config, false, false, false);
    let targets = config.names().into_iter().map(str::to_string).collect();
    let _ = plan(config, &Request { targets, ..Request::default() });
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("cmd".to_string()),
        Just("deps".to_string()),
        Just("daemon".to_string()),
        Just("ready".to_string()),
        Just("timeout".to_string()),
        Just("env".to_string()),
        Just("cwd".to_string()),
        Just("sources".to_string()),
        Just("outputs".to_string()),
        Just("stop_signal".to_string()),
        Just("stop_timeout".to_string()),
        Just("always_run".to_string()),
        "[a-z_]{1,8}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        "\"[ -~]{0,12}\"",
        "-?[0-9]{1,12}",
        Just("true".to_string()),
        Just("\"\"".to_string()),
        Just("\"5s\"".to_string()),
        Just("\"SIGTERM\"".to_string()),
        Just("{ tcp = 9 }".to_string()),
        Just("{ log = \"(\" }".to_string()),
        Just("{ http = \"http://[::1]:0/\" }".to_string()),
    ];
    leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((key(), inner), 0..4).prop_map(|kv| {
                format!("{{ {} }}", kv.into_iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", "))
            }),
        ]
    })
}

/// Irun.toml-shaped documents: a few tasks with plausible and implausible keys and values, deps among them.
fn document() -> impl Strategy<Value = String> {
    let task = ("[a-c]{1,2}", prop::collection::vec((key(), value()), 0..6), prop::collection::vec("[a-c]{1,2}", 0..3));
    (prop::option::of(prop::collection::vec("[a-c]{1,2}", 0..3)), prop::collection::vec(task, 0..5)).prop_map(
        |(default, tasks)| {
            let mut doc = String::new();
            if let Some(d) = default {
                doc.push_str(&format!(
                    "default = [{}]\n",
                    d.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ")
                ));
            }
            for (name, keys, deps) in tasks {
                doc.push_str(&format!("[tasks.{name}]\n"));
                for (k, v) in keys {
                    doc.push_str(&format!("{k} = {v}\n"));
                }
                doc.push_str(&format!(
                    "deps = [{}]\n",
                    deps.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ")
                ));
            }
            doc
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn irun_toml_shaped_input_never_panics(doc in document()) {
        load(&doc);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        load(&text);
    }

    #[test]
    fn arbitrary_bytes_as_text_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        load(&String::from_utf8_lossy(&bytes));
    }
}
