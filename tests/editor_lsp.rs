//! The scenario schema in a real editor's language server: the npm
//! `yaml-language-server`, driven over its LSP protocol (JSON-RPC on
//! stdio) as an editor drives it. It must offer the engine kinds after
//! `kind: `, report an unknown option, stay quiet on a shipped scenario,
//! and, with the schema narrowed to a scenario (`phasebench schema --for`),
//! offer the instances after `engine: ` and only the chosen instance's
//! operations after `op: `.
//!
//! `PHASEBENCH_YAML_LANGUAGE_SERVER` names the server's executable
//! (`.ci/run` installs it with npm); without it the test says so and
//! passes, unless `PHASEBENCH_REQUIRE_YAML_LANGUAGE_SERVER` is set.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{phasebench, root, status};

/// How long one answer of the server may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// A language server on the other end of a pipe.
struct Server {
    child: Child,
    input: ChildStdin,
    messages: Receiver<Value>,
    next_id: u64,
    /// The latest diagnostics published per document.
    diagnostics: std::collections::HashMap<String, Vec<Value>>,
}

impl Server {
    fn start(executable: &Path) -> Server {
        let mut child = Command::new(executable)
            .arg("--stdio")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", executable.display()));
        let input = child.stdin.take().unwrap();
        let mut output = BufReader::new(child.stdout.take().unwrap());
        let (send, messages) = channel();
        std::thread::spawn(move || loop {
            let mut length = None;
            loop {
                let mut line = String::new();
                if output.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let line = line.trim();
                if line.is_empty() {
                    break;
                }
                if let Some(value) = line.strip_prefix("Content-Length:") {
                    length = value.trim().parse::<usize>().ok();
                }
            }
            let mut body = vec![0; length.unwrap_or(0)];
            if output.read_exact(&mut body).is_err() {
                return;
            }
            if let Ok(message) = serde_json::from_slice(&body) {
                if send.send(message).is_err() {
                    return;
                }
            }
        });
        Server { child, input, messages, next_id: 0, diagnostics: Default::default() }
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.input, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.input.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Sends a request and returns its result, answering the server's own
    /// requests and keeping its diagnostics meanwhile.
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        let deadline = Instant::now() + PATIENCE;
        loop {
            let message = self.receive(deadline).unwrap_or_else(|| panic!("no answer to {method} in {PATIENCE:?}"));
            if message.get("id") == Some(&json!(id)) && message.get("method").is_none() {
                return message.get("result").cloned().unwrap_or(Value::Null);
            }
        }
    }

    /// The next message, after handling it if it is the server's request or diagnostics.
    fn receive(&mut self, deadline: Instant) -> Option<Value> {
        let wait = deadline.checked_duration_since(Instant::now())?;
        let message = match self.messages.recv_timeout(wait) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
        };
        if let (Some(method), Some(id)) = (message.get("method").and_then(Value::as_str), message.get("id")) {
            // The server asks for its settings (and may register capabilities).
            let result = if method == "workspace/configuration" {
                let items = message["params"]["items"].as_array().map_or(0, Vec::len);
                json!(vec![settings(); items])
            } else {
                Value::Null
            };
            let answer = json!({ "jsonrpc": "2.0", "id": id.clone(), "result": result });
            self.send(answer);
        } else if message.get("method") == Some(&json!("textDocument/publishDiagnostics")) {
            let uri = message["params"]["uri"].as_str().unwrap_or_default().to_owned();
            let list = message["params"]["diagnostics"].as_array().cloned().unwrap_or_default();
            self.diagnostics.insert(uri, list);
        }
        Some(message)
    }

    /// Opens `text` as the document `uri`.
    fn open(&mut self, uri: &str, text: &str) {
        let document = json!({ "uri": uri, "languageId": "yaml", "version": 1, "text": text });
        self.notify("textDocument/didOpen", json!({ "textDocument": document }));
    }

    /// The completion labels at the end of the `nth` line (from 0) of
    /// `text` that starts with `prefix` after its indentation.
    fn complete(&mut self, uri: &str, text: &str, prefix: &str, nth: usize) -> Vec<String> {
        let (line, column) = text
            .lines()
            .enumerate()
            .filter(|(_, line)| line.trim_start().starts_with(prefix))
            .nth(nth)
            .map(|(index, line)| (index, line.chars().count()))
            .unwrap_or_else(|| panic!("no line {nth} starting with {prefix:?}"));
        let position = json!({ "line": line, "character": column });
        let result =
            self.request("textDocument/completion", json!({ "textDocument": { "uri": uri }, "position": position }));
        let items = result.get("items").cloned().unwrap_or(result);
        let mut labels: Vec<String> = items
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item["label"].as_str().map(str::to_owned))
            .collect();
        labels.sort();
        labels
    }

    /// The diagnostics of `uri` once the server has published them for it
    /// and then stayed quiet for a second.
    fn settled_diagnostics(&mut self, uri: &str) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline {
            let published = self.diagnostics.contains_key(uri);
            if published && quiet_since.elapsed() > Duration::from_secs(1) {
                break;
            }
            if self.receive((Instant::now() + Duration::from_millis(200)).min(deadline)).is_some() {
                quiet_since = Instant::now();
            }
        }
        self.diagnostics.get(uri).cloned().unwrap_or_else(|| panic!("no diagnostics published for {uri}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn settings() -> Value {
    json!({ "validate": true, "completion": true, "hover": true, "schemaStore": { "enable": false } })
}

/// The server's executable, or `None` (and the test passes) where it is not installed.
fn server() -> Option<PathBuf> {
    match std::env::var_os("PHASEBENCH_YAML_LANGUAGE_SERVER") {
        Some(path) => Some(PathBuf::from(path)),
        None => {
            assert!(
                std::env::var_os("PHASEBENCH_REQUIRE_YAML_LANGUAGE_SERVER").is_none(),
                "PHASEBENCH_YAML_LANGUAGE_SERVER is not set, and the language server is required here"
            );
            eprintln!(
                "yaml-language-server is not installed (npm install yaml-language-server, then set \
                 PHASEBENCH_YAML_LANGUAGE_SERVER to node_modules/.bin/yaml-language-server): skipped"
            );
            None
        }
    }
}

fn uri_of(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn messages(diagnostics: &[Value]) -> Vec<String> {
    diagnostics.iter().filter_map(|d| d["message"].as_str().map(str::to_owned)).collect()
}

/// The engine kinds and each kind's operations, from `phasebench list`.
fn catalog() -> Vec<(String, Vec<String>)> {
    let list = String::from_utf8(phasebench().arg("list").output().unwrap().stdout).unwrap();
    let mut kinds: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_operations = false;
    for line in list.lines() {
        if let Some(rest) = line.strip_prefix("engine `") {
            kinds.push((rest.split('`').next().unwrap_or_default().to_owned(), Vec::new()));
            in_operations = false;
        } else if line == "  operations:" {
            in_operations = true;
        } else if !line.starts_with("    ") {
            in_operations = false;
        } else if in_operations && !line.starts_with("     ") {
            if let (Some((_, ops)), Some((name, _))) = (kinds.last_mut(), line.trim().split_once(':')) {
                ops.push(name.to_owned());
            }
        }
    }
    kinds
}

#[test]
fn the_language_server_completes_and_checks_scenarios_with_the_schema() {
    let Some(executable) = server() else { return };
    let catalog = catalog();
    assert!(catalog.len() >= 6 && catalog.iter().all(|(_, ops)| !ops.is_empty()), "{catalog:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&executable);
    let workspace = json!([{ "uri": uri_of(root()), "name": "phasebench" }]);
    let capabilities = json!({
        "textDocument": { "completion": { "completionItem": { "snippetSupport": false } }, "publishDiagnostics": {} },
        "workspace": { "configuration": true }
    });
    let initialized = server.request(
        "initialize",
        json!({ "processId": std::process::id(), "rootUri": uri_of(root()), "workspaceFolders": workspace, "capabilities": capabilities }),
    );
    assert!(initialized["capabilities"]["completionProvider"].is_object(), "{initialized}");
    server.notify("initialized", json!({}));
    server.notify("workspace/didChangeConfiguration", json!({ "settings": { "yaml": settings() } }));

    // The committed schema, named by the shipped scenarios' first line.
    let quickstart_path = root().join("scenarios/quickstart.yaml");
    let quickstart = std::fs::read_to_string(&quickstart_path).unwrap();
    server.open(&uri_of(&quickstart_path), &quickstart);
    let clean = server.settled_diagnostics(&uri_of(&quickstart_path));
    assert!(clean.is_empty(), "a shipped scenario has schema diagnostics: {:?}", messages(&clean));

    let draft = "# yaml-language-server: $schema=../schema/phasebench.schema.json
scenario: draft
engines:
  store: { kind: vault, compresion: on }
  cal:
    kind: 
phases:
  - name: p
    workloads:
      - { name: w, engine: store, op: read }
";
    // A document beside the shipped ones (it need not exist on disk: the
    // editor sends its text), so that the relative `$schema` resolves.
    let draft_uri = uri_of(&root().join("scenarios/draft-being-edited.yaml"));
    server.open(&draft_uri, draft);
    let kinds = server.complete(&draft_uri, draft, "kind:", 0);
    let expected: Vec<String> = {
        let mut kinds: Vec<String> = catalog.iter().map(|(kind, _)| kind.clone()).collect();
        kinds.sort();
        kinds
    };
    assert_eq!(kinds, expected, "completion after `kind: `");
    let found = messages(&server.settled_diagnostics(&draft_uri));
    assert!(
        found.iter().any(|message| message.contains("compresion")),
        "no diagnostic for the unknown option `compresion`: {found:?}"
    );

    // The schema narrowed to a scenario: `engine:` offers its instances and
    // `op:` the chosen instance's operations only.
    let scenario = dir.path().join("mine.yaml");
    std::fs::write(
        &scenario,
        "scenario: mine\nengines:\n  store: { kind: vault }\n  cal: { kind: calibrate }\nphases: []\n",
    )
    .unwrap();
    let narrowed = dir.path().join("mine.schema.json");
    let output = phasebench().args(["schema", "--for"]).arg(&scenario).arg("--out").arg(&narrowed).output().unwrap();
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let editing = "# yaml-language-server: $schema=mine.schema.json
scenario: mine
engines:
  store: { kind: vault }
  cal: { kind: calibrate }
phases:
  - name: p
    workloads:
      - name: on-the-store
        engine: store
        op: 
      - name: on-the-clock
        engine: cal
        op: 
      - name: undecided
        engine: 
";
    let editing_uri = uri_of(&dir.path().join("mine.yaml"));
    server.open(&editing_uri, editing);
    let ops_of = |kind: &str| {
        let mut ops = catalog.iter().find(|(name, _)| name == kind).map(|(_, ops)| ops.clone()).unwrap_or_default();
        ops.sort();
        ops
    };
    let store_ops = server.complete(&editing_uri, editing, "op:", 0);
    assert_eq!(store_ops, ops_of("vault"), "completion after `op: ` under `engine: store`");
    let clock_ops = server.complete(&editing_uri, editing, "op:", 1);
    assert_eq!(clock_ops, ops_of("calibrate"), "completion after `op: ` under `engine: cal`");
    assert_ne!(store_ops, clock_ops);
    let instances = server.complete(&editing_uri, editing, "engine:", 2);
    assert_eq!(instances, ["cal", "store"], "completion after `engine: `");

    // The check tells the two apart: with the schema of the format alone,
    // the same document is offered every engine's operations.
    let whole = root().join("schema/phasebench.schema.json");
    let unnarrowed = editing.replacen("$schema=mine.schema.json", &format!("$schema={}", whole.display()), 1);
    let unnarrowed_uri = uri_of(&dir.path().join("unnarrowed.yaml"));
    server.open(&unnarrowed_uri, &unnarrowed);
    let every_op = server.complete(&unnarrowed_uri, &unnarrowed, "op:", 0);
    assert!(every_op.len() > store_ops.len() && clock_ops.iter().all(|op| every_op.contains(op)), "{every_op:?}");
}
