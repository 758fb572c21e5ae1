//! `phasebench launch kubernetes`: one multi-document manifest for
//! `kubectl apply -f -`: the results claim, the scenario in a ConfigMap, an
//! Indexed Job whose pod I runs shard I, and a merge Job.
//!
//! Kubernetes has no dependency between Jobs. Rather than ask the user to
//! apply the merge after `kubectl wait`, the merge Job is applied with the
//! shards and waits by itself: each shard, when `phasebench run` ends, writes
//! its exit status to `status/I` on the shared volume (not `results.json`,
//! which is saved after every run, long before a shard is done), and the
//! merge polls until there are N of them. A shard's pod succeeds whatever
//! phasebench said (the status file says it), so that one failed shard does
//! not fail the Job and take its siblings down with it; the merge then
//! refuses to merge and names it.
//!
//! The start time is written into the manifest when it is generated (a pod
//! cannot learn when its Job was created), so apply it at once.

use clap::Args;

use super::{check, shell_tail, shell_word, Launch, LaunchArgs};
use crate::cli::Status;

/// Arguments of `phasebench launch kubernetes`.
#[derive(Debug, Args)]
pub struct KubernetesArgs {
    #[command(flatten)]
    pub launch: LaunchArgs,
    /// The container image, with phasebench on its PATH and /bin/sh.
    #[arg(long, default_value = "phasebench:latest")]
    pub image: String,
    /// The ReadWriteMany PersistentVolumeClaim that holds the results (created if missing).
    #[arg(long, value_name = "NAME", default_value = "phasebench-results")]
    pub volume: String,
    /// Size requested for the claim when it is created.
    #[arg(long, value_name = "SIZE", default_value = "1Gi")]
    pub volume_size: String,
    /// The Jobs' name, and the folder on the volume (default: pb-<scenario>-<start time>).
    #[arg(long)]
    pub name: Option<String>,
    /// Seconds the merge Job waits for the shards before giving up (default a day).
    #[arg(long, value_name = "SECONDS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u32).range(60..))]
    pub merge_deadline: u32,
}

/// Runs the command.
pub fn execute(args: &KubernetesArgs) -> Status {
    let launch = match check(&args.launch) {
        Ok(launch) => launch,
        Err(status) => return status,
    };
    match manifest(&launch, args, chrono::Utc::now()) {
        Ok(manifest) => {
            print!("{manifest}");
            Status::Success
        }
        Err(message) => {
            eprintln!("error: {message}");
            Status::InvalidInput
        }
    }
}

/// The longest name: the merge Job and the ConfigMap add a suffix, and a
/// Job's name must leave room in its pods' 63-character labels.
const MAX_NAME: usize = 48;

/// Whether `name` is a DNS label Kubernetes accepts as an object name.
fn is_dns_label(name: &str, max: usize) -> bool {
    let inner = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    !name.is_empty() && name.len() <= max && name.chars().all(inner) && !name.starts_with('-') && !name.ends_with('-')
}

/// `pb-<scenario>-<start>`, lower case, within `MAX_NAME`.
fn default_name(scenario: &str, start: chrono::DateTime<chrono::Utc>) -> String {
    let mut slug = String::new();
    for c in scenario.chars().map(|c| c.to_ascii_lowercase()) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' };
        if !(c == '-' && (slug.is_empty() || slug.ends_with('-'))) {
            slug.push(c);
        }
    }
    slug.truncate(24);
    let slug = slug.trim_end_matches('-');
    let slug = if slug.is_empty() { "scenario" } else { slug };
    format!("pb-{slug}-{}", start.format("%Y%m%d-%H%M%S"))
}

/// `text` as a YAML double-quoted scalar (JSON's string syntax is YAML's).
fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// `text` as a YAML block scalar whose lines are indented by `indent`
/// spaces, the value of a key indented by `indent - 2`, or as a quoted
/// scalar where a block cannot carry it exactly.
fn block(text: &str, indent: usize) -> String {
    let plain = text.chars().all(|c| c == '\n' || c == '\t' || !c.is_control()) && !text.starts_with('\u{feff}');
    if !plain || text.trim().is_empty() {
        return quoted(text);
    }
    let body = text.trim_end_matches('\n');
    let chomp = match text.len() - body.len() {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let pad = " ".repeat(indent);
    // A first line that starts with a space needs the indentation said.
    let indicator = if text.starts_with(' ') { "2" } else { "" };
    let mut out = format!("|{indicator}{chomp}\n");
    for line in text.strip_suffix('\n').unwrap_or(text).split('\n') {
        if !line.is_empty() {
            out.push_str(&pad);
        }
        out.push_str(line);
        out.push('\n');
    }
    out.pop();
    out
}

/// The manifest of a launch generated at `now`.
fn manifest(launch: &Launch, args: &KubernetesArgs, now: chrono::DateTime<chrono::Utc>) -> Result<String, String> {
    let start = launch.start.instant(now);
    let name = args.name.clone().unwrap_or_else(|| default_name(&launch.name, start));
    if !is_dns_label(&name, MAX_NAME) {
        return Err(format!("--name {name}: lower-case letters, digits and '-', at most {MAX_NAME} characters"));
    }
    if !is_dns_label(&args.volume, 63) {
        return Err(format!("--volume {}: a claim name is lower-case letters, digits and '-'", args.volume));
    }
    if args.image.is_empty() || args.image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("--image {:?}: an image reference has no spaces", args.image));
    }
    if args.volume_size.is_empty() || !args.volume_size.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
        return Err(format!("--volume-size {:?}: a quantity such as 1Gi", args.volume_size));
    }
    let file = launch
        .scenario
        .file_name()
        .and_then(|name| name.to_str())
        .filter(|name| name.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)))
        .unwrap_or("scenario.yaml");
    let binary = shell_word(&args.launch.binary.as_ref().map_or("phasebench".into(), |b| b.to_string_lossy()));
    let shards = launch.shards;
    let start_at = start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let shard_script = format!(
        r#"status=0
{binary} run /scenario/{file} --shard auto/{shards} --start-at {start_at} --out "/results/shard-$JOB_COMPLETION_INDEX"{extra} || status=$?
mkdir -p /results/status
echo "$status" >"/results/status/$JOB_COMPLETION_INDEX"
echo "shard $JOB_COMPLETION_INDEX: phasebench run exited $status"
"#,
        extra = shell_tail(&launch.run_args),
    );
    let merge_script = format!(
        r#"echo "waiting for {shards} shards to finish (/results/status/)"
until [ "$(ls /results/status 2>/dev/null | wc -l)" -ge {shards} ]; do sleep 10; done
failed=$(grep -L -x '[01]' /results/status/* || true)
if [ -n "$failed" ]; then
  echo "not merged: these shards failed (their status files; see their pods' logs):" $failed >&2
  exit 1
fi
exec {binary} merge /results/merged /results/shard-*
"#
    );
    Ok(format!(
        r#"# The scenario `{scenario}` as {shards} shards that start together at {start_at},
# then merged. Generated by `phasebench launch kubernetes`; apply it at once:
#
#   phasebench launch kubernetes ... | kubectl apply -f -
#   kubectl logs -f job/{name}-merge
#
# The start time is fixed in this manifest: give --start-in enough time to pull
# the image and schedule every pod, as a shard that starts late starts at once,
# out of step with the others.
#
# Kubernetes has no dependency between Jobs, so the merge Job is applied with
# the shards and waits by itself: each shard writes its exit status to
# status/I on the shared volume when phasebench ends, and the merge polls for
# {shards} of them (results.json alone would not do: it is saved after every
# run, long before a shard is done). Results: folder {name}/ of the claim
# {volume}: shard-I/, status/, merged/.
---
# Every pod reads and writes the same folder: the claim must be ReadWriteMany
# (NFS, CephFS, a cloud file store). Already there, it is left as it is.
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {volume}
spec:
  accessModes: [ReadWriteMany]
  resources:
    requests:
      storage: {volume_size}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-scenario
  labels:
    app.kubernetes.io/name: phasebench
    phasebench/launch: {name}
data:
  {file}: {source}
---
# Pod I runs shard I: the Job controller sets JOB_COMPLETION_INDEX, which
# `--shard auto/{shards}` reads. A pod succeeds whatever phasebench said, so
# that one failed shard does not fail the Job and stop its siblings; its
# status file tells the merge.
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: phasebench
    phasebench/launch: {name}
spec:
  completionMode: Indexed
  completions: {shards}
  parallelism: {shards}
  # A pod run again would find its run folder taken.
  backoffLimit: 0
  template:
    metadata:
      labels:
        app.kubernetes.io/name: phasebench
        phasebench/launch: {name}
    spec:
      restartPolicy: Never
      containers:
        - name: shard
          image: {image}
          command: ["/bin/sh", "-c"]
          args:
            - {shard_script}
          volumeMounts:
            - name: scenario
              mountPath: /scenario
              readOnly: true
            - name: results
              mountPath: /results
              subPath: {name}
      volumes:
        - name: scenario
          configMap:
            name: {name}-scenario
        - name: results
          persistentVolumeClaim:
            claimName: {volume}
---
# Waits for the {shards} shards' status files, then merges them into merged/;
# it gives up after {merge_deadline} s (a pod lost without a status file).
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}-merge
  labels:
    app.kubernetes.io/name: phasebench
    phasebench/launch: {name}
spec:
  backoffLimit: 0
  activeDeadlineSeconds: {merge_deadline}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: phasebench
        phasebench/launch: {name}
    spec:
      restartPolicy: Never
      containers:
        - name: merge
          image: {image}
          command: ["/bin/sh", "-c"]
          args:
            - {merge_script}
          volumeMounts:
            - name: results
              mountPath: /results
              subPath: {name}
      volumes:
        - name: results
          persistentVolumeClaim:
            claimName: {volume}
"#,
        scenario = launch.name,
        volume = args.volume,
        volume_size = args.volume_size,
        source = block(&launch.source, 4),
        image = quoted(&args.image),
        shard_script = block(&shard_script, 14),
        merge_script = block(&merge_script, 14),
        merge_deadline = args.merge_deadline,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_text_survives_the_manifest() {
        for text in ["a: 1\n", "a: 1", "a: 1\n\n\n", "  indented: first\nb: 2\n", "tab\there\n", "cr\r\n", "\n"] {
            let yaml = format!("data:\n  key: {}\n", block(text, 4));
            let yaml = format!("{yaml}  next: 1\n");
            let parsed: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
            assert_eq!(parsed["data"]["key"].as_str(), Some(text), "{yaml}");
        }
    }

    #[test]
    fn names_are_dns_labels() {
        let start = chrono::DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z").unwrap().to_utc();
        assert_eq!(default_name("Calibrate_Shards!", start), "pb-calibrate-shards-20261201-090000");
        assert_eq!(default_name("???", start), "pb-scenario-20261201-090000");
        let long = default_name(&"x".repeat(100), start);
        assert!(is_dns_label(&long, MAX_NAME), "{long}");
        assert!(!is_dns_label("Upper", MAX_NAME) && !is_dns_label("-x", MAX_NAME) && !is_dns_label("", MAX_NAME));
    }
}
