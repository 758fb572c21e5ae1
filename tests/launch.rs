//! `phasebench launch`: the Kubernetes manifest read back as YAML, the Slurm
//! script read line by line, the refusals (exit 2, nothing written), and the
//! committed examples equal to what the tool prints now.
//! scripts/slurm-check.sh submits a Slurm launch to a real one-node cluster.

mod common;

use common::{phasebench, root, status};
use serde::Deserialize;
use serde_yaml::Value;

const SCENARIO: &str = "examples/slurm/calibrate.yaml";

/// `phasebench launch ARGS` from the repository root: its stdout, or a panic showing stderr.
fn launch(args: &[&str]) -> String {
    let output = phasebench().current_dir(root()).arg("launch").args(args).output().unwrap();
    assert_eq!(status(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// The manifest's documents.
fn documents(manifest: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(manifest).map(|document| Value::deserialize(document).unwrap()).collect()
}

/// The document of this kind whose name ends so.
fn object<'a>(documents: &'a [Value], kind: &str, name_ends: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"].as_str().is_some_and(|n| n.ends_with(name_ends)))
        .unwrap_or_else(|| panic!("no {kind} named …{name_ends}"))
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_else(|| panic!("not a string: {value:?}"))
}

#[test]
fn kubernetes_runs_an_indexed_job_of_shards_then_a_merge() {
    let manifest = launch(&[
        "kubernetes",
        SCENARIO,
        "--shards",
        "3",
        "--start-at",
        "2026-12-01T09:00:00Z",
        "--image",
        "registry.example.com/phasebench:1",
        "--volume",
        "shared-results",
        "--name",
        "calibrate",
        "--",
        "--smoke",
    ]);
    let documents = documents(&manifest);
    assert_eq!(documents.len(), 4, "claim, scenario, shards, merge");

    let claim = object(&documents, "PersistentVolumeClaim", "shared-results");
    assert_eq!(claim["spec"]["accessModes"][0], "ReadWriteMany");

    let scenario = object(&documents, "ConfigMap", "calibrate-scenario");
    let source = std::fs::read_to_string(root().join(SCENARIO)).unwrap();
    assert_eq!(text(&scenario["data"]["calibrate.yaml"]), source, "the scenario travels byte for byte");

    let shards = object(&documents, "Job", "calibrate");
    let spec = &shards["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(spec["completions"], 3);
    assert_eq!(spec["parallelism"], 3);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "registry.example.com/phasebench:1");
    let script = text(&container["args"][0]);
    let run_line = script.lines().find(|line| line.contains(" run ")).expect("a run line");
    for part in [
        "phasebench run /scenario/calibrate.yaml",
        "--shard auto/3",
        "--start-at 2026-12-01T09:00:00Z",
        "--out \"/results/shard-$JOB_COMPLETION_INDEX\"",
        "--smoke",
    ] {
        assert!(run_line.contains(part), "`{part}` not in {run_line}");
    }
    assert!(script.contains("/results/status/$JOB_COMPLETION_INDEX"), "each shard leaves its status: {script}");
    let mounts = container["volumeMounts"].as_sequence().unwrap();
    let results_mount = mounts.iter().find(|m| m["name"] == "results").expect("results mounted");
    assert_eq!(results_mount["mountPath"], "/results");
    assert_eq!(results_mount["subPath"], "calibrate", "each launch has its own folder on the claim");
    assert!(mounts.iter().any(|m| m["name"] == "scenario" && m["mountPath"] == "/scenario"));
    let volumes = pod["volumes"].as_sequence().unwrap();
    assert!(volumes.iter().any(|v| v["persistentVolumeClaim"]["claimName"] == "shared-results"));
    assert!(volumes.iter().any(|v| v["configMap"]["name"] == "calibrate-scenario"));

    let merge = object(&documents, "Job", "calibrate-merge");
    let container = &merge["spec"]["template"]["spec"]["containers"][0];
    let script = text(&container["args"][0]);
    assert!(script.contains("-ge 3"), "the merge waits for 3 status files: {script}");
    assert!(script.contains("phasebench merge /results/merged /results/shard-*"), "{script}");
    assert_eq!(container["volumeMounts"][0]["subPath"], "calibrate");
    assert!(manifest.contains("no dependency between Jobs"), "the manifest says how the merge waits");
}

#[test]
fn slurm_runs_an_array_then_a_merge_after_it() {
    let script =
        launch(&["slurm", SCENARIO, "--shards", "5", "--dir", "/shared/x", "--binary", "/opt/pb", "--", "--smoke"]);
    let lines: Vec<&str> = script.lines().collect();
    assert!(lines.contains(&"#SBATCH --array=0-4"), "{script}");
    assert!(lines.contains(&"#SBATCH --output=/shared/x/logs/shard-%a.out"));
    let run_line = lines.iter().find(|line| line.starts_with("/opt/pb run ")).expect("the run line");
    for part in [
        "\"$dir/scenario.yaml\"",
        "--shard auto/5",
        "--start-at \"$PHASEBENCH_START_AT\"",
        "--out \"$dir/shard-$SLURM_ARRAY_TASK_ID\"",
        "--smoke",
    ] {
        assert!(run_line.contains(part), "`{part}` not in {run_line}");
    }
    // The start is computed once, at submission, and exported to every task.
    let start = lines.iter().position(|line| line.starts_with("start_at=$(date -u -d '+30 seconds'")).unwrap();
    let array = lines.iter().position(|line| line.starts_with("array=$(sbatch --parsable")).unwrap();
    assert!(start < array && lines[array].contains("--export=ALL,PHASEBENCH_START_AT=\"$start_at\""));
    let merge = lines.iter().find(|line| line.starts_with("merge=$(sbatch")).unwrap();
    assert!(merge.contains("--dependency=afterok:\"$array\""), "{merge}");
    assert!(lines.contains(&"exec /opt/pb merge \"$dir/merged\" \"$dir\"/shard-*"));
    assert!(lines.contains(&format!("cp {} \"$dir/scenario.yaml\"", root().join(SCENARIO).display()).as_str()));

    let fixed = launch(&["slurm", SCENARIO, "--shards", "1", "--dir", "/x", "--start-at", "2026-12-01T09:00:00Z"]);
    assert!(fixed.contains("#SBATCH --array=0-0") && fixed.contains("start_at=2026-12-01T09:00:00Z\n"));
    let own = std::fs::canonicalize(env!("CARGO_BIN_EXE_phasebench")).unwrap();
    assert!(fixed.contains(&format!("{} run ", own.display())), "this program's own path by default");
}

#[test]
fn the_script_runs_in_bash() {
    let script = launch(&["slurm", SCENARIO, "--shards", "2", "--dir", "/shared/x", "--", "--only", "Shared work"]);
    assert!(script.contains(" --only 'Shared work'\n"), "{script}");
    let checked = std::process::Command::new("bash").args(["-n", "-c", &script]).status().unwrap();
    assert!(checked.success());
}

#[test]
fn refusals_exit_2_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    let shared_arg = shared.to_str().unwrap();
    let taken = dir.path().join("taken");
    std::fs::create_dir_all(taken.join("shard-0")).unwrap();
    for (args, message) in [
        (vec!["slurm", SCENARIO, "--shards", "0"], "0 is not in 1..=10000"),
        (vec!["slurm", SCENARIO, "--shards", "10001"], "10001 is not in 1..=10000"),
        (vec!["kubernetes", SCENARIO, "--shards", "0"], "0 is not in 1..=10000"),
        (vec!["slurm", "missing.yaml", "--shards", "2"], "cannot read the scenario"),
        (vec!["slurm", SCENARIO], "--shards"),
        (vec!["slurm", SCENARIO, "--shards", "2", "--bogus"], "--bogus"),
        (
            vec!["slurm", SCENARIO, "--shards", "2", "--start-in", "5", "--start-at", "2026-12-01T09:00:00Z"],
            "cannot be used",
        ),
        (vec!["slurm", SCENARIO, "--shards", "2", "--start-at", "soon"], "RFC 3339"),
        (vec!["slurm", SCENARIO, "--shards", "2", "--", "--shard", "0/2"], "--shard is the launcher's"),
        (vec!["slurm", SCENARIO, "--shards", "2", "--", "--out", "x"], "--out is the launcher's"),
        (vec!["slurm", SCENARIO, "--shards", "2", "--", "--nope"], "not what `phasebench run` takes"),
        (vec!["slurm", SCENARIO, "--shards", "2", "--", "--var", "nope=1"], "no variable `nope`"),
        (vec!["slurm", SCENARIO, "--shards", "2", "--dir", "/a b"], "--dir /a b"),
        (vec!["kubernetes", SCENARIO, "--shards", "2", "--name", "Not_A_Label"], "--name Not_A_Label"),
        (vec!["kubernetes", SCENARIO, "--shards", "2", "--image", "two words"], "--image"),
    ] {
        // Slurm's launches name a shared folder that must stay unwritten.
        let mut command = phasebench();
        command.current_dir(root()).args(["launch", args[0]]);
        if args[0] == "slurm" && !args.contains(&"--dir") {
            command.args(["--dir", shared_arg]);
        }
        let output = command.args(&args[1..]).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(status(&output), 2, "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: `{message}` not in {stderr}");
        assert!(output.stdout.is_empty(), "{args:?} printed a script");
    }
    // --submit refuses a folder in use before it looks for sbatch.
    let output = phasebench()
        .current_dir(root())
        .args(["launch", "slurm", SCENARIO, "--shards", "2", "--submit", "--dir"])
        .arg(&taken)
        .output()
        .unwrap();
    assert_eq!(status(&output), 2, "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not empty"));
    let output = phasebench()
        .current_dir(root())
        .args(["launch", "slurm", "missing.yaml", "--shards", "2", "--submit", "--dir", shared_arg])
        .output()
        .unwrap();
    assert_eq!(status(&output), 2);
    assert!(!shared.exists(), "nothing written");
}

/// The committed examples are what the tool prints now; set
/// PHASEBENCH_UPDATE_EXAMPLES=1 to write them again after a change.
#[test]
fn the_examples_are_what_the_tool_prints() {
    let repo = format!("{}/", root().display());
    for (file, args) in [
        (
            "examples/slurm/submit.sh",
            &[
                "slurm",
                SCENARIO,
                "--shards",
                "4",
                "--dir",
                "/shared/phasebench/calibrate",
                "--binary",
                "/opt/phasebench/bin/phasebench",
            ][..],
        ),
        (
            "examples/kubernetes/calibrate.yaml",
            &[
                "kubernetes",
                SCENARIO,
                "--shards",
                "4",
                "--start-at",
                "2026-12-01T09:00:00Z",
                "--image",
                "registry.example.com/phasebench:0.1.0",
            ][..],
        ),
    ] {
        // The scenario's absolute path is this checkout's: the example shows a placeholder.
        let printed = launch(args).replace(&repo, "/path/to/phasebench/");
        let path = root().join(file);
        if std::env::var_os("PHASEBENCH_UPDATE_EXAMPLES").is_some() {
            std::fs::write(&path, &printed).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == printed,
            "{file} is not what `phasebench launch {}` prints now; run this test with PHASEBENCH_UPDATE_EXAMPLES=1",
            args.join(" ")
        );
    }
}
