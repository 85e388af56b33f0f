//! The Kubernetes manifests of `deploy/kubernetes`, checked without a
//! cluster. Every YAML document is parsed and the references between them
//! resolved: selectors and pod labels, Services and their target ports,
//! probes' ports, volumes and mounts, ConfigMaps and Secrets and their keys,
//! service accounts and RBAC. Every Hearth container's command line is parsed
//! by the real binary (`hearth tools check-args`), and the files it mounts are
//! loaded as Hearth loads them (hearth-config, hearth-objstore, and
//! `promtool check config` when promtool is on the PATH). Then the cluster's
//! wiring: the ingesters' `--peers` name their own pods, the querier reaches
//! every StoreAPI, scraper replicas differ by their replica label, the bucket
//! is the one MinIO's Job makes, with MinIO's keys.
//!
//! Each problem names the file, the document and the field. A negative test
//! breaks copies of the manifests in memory and expects the checks to notice,
//! so that they cannot pass by checking nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Every namespaced resource lives here.
const NAMESPACE: &str = "hearth";

/// The kinds the manifests may use: (kind, apiVersion, namespaced).
const KINDS: &[(&str, &str, bool)] = &[
    ("Namespace", "v1", false),
    ("ConfigMap", "v1", true),
    ("Secret", "v1", true),
    ("Service", "v1", true),
    ("ServiceAccount", "v1", true),
    ("Role", "rbac.authorization.k8s.io/v1", true),
    ("RoleBinding", "rbac.authorization.k8s.io/v1", true),
    ("StatefulSet", "apps/v1", true),
    ("Deployment", "apps/v1", true),
    ("Job", "batch/v1", true),
    ("PodDisruptionBudget", "policy/v1", true),
    ("Kustomization", "kustomize.config.k8s.io/v1beta1", false),
];

/// Kinds with a pod template at `spec.template`.
const WORKLOADS: &[&str] = &["StatefulSet", "Deployment", "Job"];

const KUSTOMIZATION: &str = "kustomization.yaml";

/// One YAML document of a manifest file.
#[derive(Clone, Debug)]
struct Doc {
    file: String,
    /// Its position in the file, from 1.
    index: usize,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        str_at(&self.value, "/kind").unwrap_or("")
    }

    fn name(&self) -> &str {
        str_at(&self.value, "/metadata/name").unwrap_or("")
    }

    /// `ingest.yaml, document 3 (StatefulSet hearth-ingest), <field>`.
    fn at(&self, field: &str) -> String {
        format!(
            "{}, document {} ({} {}), {field}",
            self.file,
            self.index,
            self.kind(),
            self.name()
        )
    }
}

/// The YAML files of the directory and their documents.
#[derive(Clone, Debug)]
struct Manifests {
    files: BTreeSet<String>,
    docs: Vec<Doc>,
}

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

/// Reads every `*.yaml`/`*.yml` file of `dir`, every document of each.
fn load(dir: &Path) -> Manifests {
    let mut files = BTreeSet::new();
    let mut docs = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .collect();
    paths.sort();
    for path in paths {
        let name = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .to_string();
        if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let values: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{name}: not valid YAML: {e}"));
        for (i, value) in values.into_iter().enumerate() {
            if value.is_null() {
                continue;
            }
            docs.push(Doc {
                file: name.clone(),
                index: i + 1,
                value,
            });
        }
        files.insert(name);
    }
    Manifests { files, docs }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn array_at<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A string map (labels, selectors); values that are not strings are left
/// out (the document check reports them).
fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a non-empty equality selector matches `labels`.
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// A pod template of a workload.
struct Pod<'a> {
    doc: &'a Doc,
    labels: BTreeMap<String, String>,
    spec: &'a Value,
}

impl Pod<'_> {
    fn containers(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        array_at(self.spec, "/initContainers")
            .iter()
            .map(|c| ("initContainers", c))
            .chain(
                array_at(self.spec, "/containers")
                    .iter()
                    .map(|c| ("containers", c)),
            )
    }

    /// The field path of a container: `spec.template.spec.containers[hearth]`.
    fn container_field(list: &str, container: &Value) -> String {
        format!(
            "spec.template.spec.{list}[{}]",
            str_at(container, "/name").unwrap_or("?")
        )
    }

    /// Whether some container declares `port` (a name or a number).
    fn has_port(&self, port: &Value) -> bool {
        self.containers()
            .any(|(_, c)| container_port(c, port).is_some())
    }

    fn replicas(&self) -> u64 {
        self.doc
            .value
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .unwrap_or(1)
    }
}

/// The number of the container port `port` names (by name or number).
fn container_port(container: &Value, port: &Value) -> Option<u64> {
    array_at(container, "/ports").iter().find_map(|p| {
        let number = p.pointer("/containerPort").and_then(Value::as_u64)?;
        let matches = match port {
            Value::String(name) => str_at(p, "/name") == Some(name.as_str()),
            Value::Number(n) => n.as_u64() == Some(number),
            _ => false,
        };
        matches.then_some(number)
    })
}

fn is_hearth(container: &Value) -> bool {
    let image = str_at(container, "/image").unwrap_or("");
    image == "hearth" || image.starts_with("hearth:") || image.starts_with("hearth@")
}

fn args_of(container: &Value) -> Vec<String> {
    array_at(container, "/args")
        .iter()
        .map(|a| {
            a.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| a.to_string())
        })
        .collect()
}

/// Every value of `--name` in `args` (`--name=v` or `--name v`).
fn flag_values(args: &[String], name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            out.push(v.to_string());
        } else if a == name {
            if let Some(v) = it.next() {
                out.push(v.clone());
            }
        }
    }
    out
}

fn has_flag(args: &[String], name: &str) -> bool {
    args.iter()
        .any(|a| a == name || a.starts_with(&format!("{name}=")))
}

/// The port of a listen address such as `0.0.0.0:10902`.
fn port_of(address: &str) -> Option<u64> {
    address.rsplit_once(':')?.1.parse().ok()
}

/// Runs `hearth tools check-args -- <args>`: clap's verdict on the command
/// line.
fn check_args(args: &[String]) -> Result<(), String> {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["tools", "check-args", "--"])
        .args(args)
        .output()
        .expect("run hearth tools check-args");
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "exit {:?}: {}",
            out.status.code(),
            stderr.lines().next().unwrap_or("").trim()
        ))
    }
}

fn promtool_available() -> bool {
    Command::new("promtool")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Replaces `$NAME` and `${NAME}` as hearth-config does for external
/// labels; unknown names become empty.
fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", after.len()),
            }
        } else {
            let n = after
                .bytes()
                .take_while(|c| *c == b'_' || c.is_ascii_alphanumeric())
                .count();
            (&after[..n], n)
        };
        if consumed == 0 {
            out.push('$');
        } else {
            out.push_str(env.get(name).map(String::as_str).unwrap_or(""));
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

/// The names `$NAME`/`${NAME}` of `text`.
fn referenced_vars(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        let name = match after.strip_prefix('{') {
            Some(braced) => braced.split('}').next().unwrap_or(""),
            None => {
                let n = after
                    .bytes()
                    .take_while(|c| *c == b'_' || c.is_ascii_alphanumeric())
                    .count();
                &after[..n]
            }
        };
        if !name.is_empty() {
            names.push(name.to_string());
        }
        rest = after;
    }
    names
}

/// The checks, collecting every problem rather than stopping at the first.
struct Checker<'a> {
    m: &'a Manifests,
    problems: Vec<String>,
    promtool: bool,
}

impl<'a> Checker<'a> {
    fn fail(&mut self, doc: &Doc, field: &str, message: impl Display) {
        self.problems.push(format!("{}: {message}", doc.at(field)));
    }

    fn find(&self, kind: &str, name: &str) -> Option<&'a Doc> {
        self.m
            .docs
            .iter()
            .find(|d| d.kind() == kind && d.name() == name)
    }

    fn pods(&self) -> Vec<Pod<'a>> {
        self.m
            .docs
            .iter()
            .filter(|d| WORKLOADS.contains(&d.kind()))
            .filter_map(|doc| {
                let template = doc.value.pointer("/spec/template")?;
                Some(Pod {
                    doc,
                    labels: string_map(template.pointer("/metadata/labels")),
                    spec: template.pointer("/spec")?,
                })
            })
            .collect()
    }

    /// The pods a Service or PodDisruptionBudget selector matches.
    fn selected(&self, selector: &BTreeMap<String, String>) -> Vec<Pod<'a>> {
        self.pods()
            .into_iter()
            .filter(|p| selects(selector, &p.labels))
            .collect()
    }

    /// The text of `key` of a ConfigMap or Secret: Err when the object or
    /// the key is missing, Ok(None) when the key exists but is base64.
    fn key_text(&self, kind: &str, name: &str, key: &str) -> Result<Option<String>, String> {
        let doc = self
            .find(kind, name)
            .ok_or_else(|| format!("no {kind} named {name:?}"))?;
        for field in ["data", "stringData"] {
            if let Some(v) = doc.value.pointer(&format!("/{field}/{key}")) {
                let readable = kind == "ConfigMap" || field == "stringData";
                return Ok(readable.then(|| v.as_str().unwrap_or("").to_string()));
            }
        }
        Err(format!("{kind} {name:?} ({}) has no key {key:?}", doc.file))
    }

    fn run(mut self) -> Vec<String> {
        self.documents();
        self.kustomization();
        for pod in self.pods() {
            self.workload(&pod);
            self.volumes(&pod);
            self.containers(&pod);
        }
        self.services();
        self.rbac();
        self.ingesters();
        self.querier();
        self.problems
    }

    /// apiVersion, kind, metadata.name, namespace; string labels; unique
    /// names per kind.
    fn documents(&mut self) {
        let mut seen = BTreeMap::new();
        for doc in &self.m.docs {
            let (Some(api_version), Some(kind)) = (
                str_at(&doc.value, "/apiVersion"),
                str_at(&doc.value, "/kind"),
            ) else {
                self.fail(doc, "apiVersion/kind", "missing");
                continue;
            };
            let Some(&(_, want_api, namespaced)) = KINDS.iter().find(|(k, _, _)| *k == kind) else {
                self.fail(doc, "kind", format!("unknown kind {kind:?}"));
                continue;
            };
            if api_version != want_api {
                self.fail(
                    doc,
                    "apiVersion",
                    format!("{kind} is {want_api:?}, not {api_version:?}"),
                );
            }
            if kind == "Kustomization" {
                continue;
            }
            if doc.name().is_empty() {
                self.fail(doc, "metadata.name", "missing");
            }
            let namespace = str_at(&doc.value, "/metadata/namespace");
            if namespaced && namespace != Some(NAMESPACE) {
                self.fail(
                    doc,
                    "metadata.namespace",
                    format!("want {NAMESPACE:?}, found {namespace:?}"),
                );
            }
            if let Some(first) = seen.insert((kind.to_string(), doc.name().to_string()), doc) {
                self.fail(
                    doc,
                    "metadata.name",
                    format!("also defined in {}", first.file),
                );
            }
            let mut maps = vec![
                ("metadata.labels", doc.value.pointer("/metadata/labels")),
                (
                    "metadata.annotations",
                    doc.value.pointer("/metadata/annotations"),
                ),
                (
                    "spec.template.metadata.labels",
                    doc.value.pointer("/spec/template/metadata/labels"),
                ),
                (
                    "spec.template.metadata.annotations",
                    doc.value.pointer("/spec/template/metadata/annotations"),
                ),
            ];
            if kind == "ConfigMap" {
                maps.push(("data", doc.value.pointer("/data")));
            }
            for (field, map) in maps {
                for (k, v) in map.and_then(Value::as_object).into_iter().flatten() {
                    if !v.is_string() {
                        self.fail(
                            doc,
                            &format!("{field}.{k}"),
                            format!("{v} is not a string (quote it)"),
                        );
                    }
                }
            }
        }
    }

    /// kustomization.yaml lists exactly the other YAML files, once each.
    fn kustomization(&mut self) {
        let kustomizations: Vec<&Doc> = self
            .m
            .docs
            .iter()
            .filter(|d| d.kind() == "Kustomization")
            .collect();
        let [doc] = kustomizations.as_slice() else {
            self.problems.push(format!(
                "{KUSTOMIZATION}: want one Kustomization in the directory, found {}",
                kustomizations.len()
            ));
            return;
        };
        if doc.file != KUSTOMIZATION {
            self.fail(
                doc,
                "kind",
                format!("the Kustomization belongs in {KUSTOMIZATION}"),
            );
        }
        if let Some(ns) = str_at(&doc.value, "/namespace") {
            if ns != NAMESPACE {
                self.fail(
                    doc,
                    "namespace",
                    format!("want {NAMESPACE:?}, found {ns:?}"),
                );
            }
        }
        let listed: Vec<&str> = array_at(&doc.value, "/resources")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let listed_set: BTreeSet<&str> = listed.iter().copied().collect();
        if listed_set.len() != listed.len() {
            self.fail(doc, "resources", "lists a file twice");
        }
        let present: BTreeSet<&str> = self
            .m
            .files
            .iter()
            .map(String::as_str)
            .filter(|f| *f != doc.file)
            .collect();
        for missing in present.difference(&listed_set) {
            self.fail(doc, "resources", format!("does not list {missing}"));
        }
        for extra in listed_set.difference(&present) {
            self.fail(
                doc,
                "resources",
                format!("lists {extra}, which is not in the directory"),
            );
        }
    }

    /// Selector against template labels; a StatefulSet's governing Service.
    fn workload(&mut self, pod: &Pod<'a>) {
        let doc = pod.doc;
        if doc.kind() == "Job" {
            return;
        }
        let selector = string_map(doc.value.pointer("/spec/selector/matchLabels"));
        if doc
            .value
            .pointer("/spec/selector/matchExpressions")
            .is_some()
        {
            self.fail(
                doc,
                "spec.selector.matchExpressions",
                "not checked by this test: use matchLabels",
            );
        }
        if selector.is_empty() {
            self.fail(doc, "spec.selector.matchLabels", "missing or empty");
        } else if !selects(&selector, &pod.labels) {
            self.fail(
                doc,
                "spec.selector.matchLabels",
                format!(
                    "{selector:?} does not match the pod template's labels {:?}",
                    pod.labels
                ),
            );
        }
        if doc.kind() == "StatefulSet" {
            let Some(service) = str_at(&doc.value, "/spec/serviceName") else {
                self.fail(doc, "spec.serviceName", "missing");
                return;
            };
            match self.find("Service", service) {
                None => self.fail(
                    doc,
                    "spec.serviceName",
                    format!("no Service named {service:?}"),
                ),
                Some(svc) => {
                    if str_at(&svc.value, "/spec/clusterIP") != Some("None") {
                        self.fail(
                            doc,
                            "spec.serviceName",
                            format!("Service {service:?} is not headless (clusterIP: None)"),
                        );
                    }
                    let selector = string_map(svc.value.pointer("/spec/selector"));
                    if !selects(&selector, &pod.labels) {
                        self.fail(
                            doc,
                            "spec.serviceName",
                            format!("Service {service:?} does not select this StatefulSet's pods"),
                        );
                    }
                }
            }
        }
    }

    /// Mounts name volumes or claim templates; volumes' and env's ConfigMaps,
    /// Secrets and keys exist; the service account exists.
    fn volumes(&mut self, pod: &Pod<'a>) {
        let doc = pod.doc;
        let mut volumes = BTreeMap::new();
        for v in array_at(pod.spec, "/volumes") {
            let name = str_at(v, "/name").unwrap_or("").to_string();
            if volumes.insert(name.clone(), v).is_some() {
                self.fail(
                    doc,
                    &format!("spec.template.spec.volumes[{name}]"),
                    "defined twice",
                );
            }
        }
        let claims: BTreeSet<&str> = array_at(&doc.value, "/spec/volumeClaimTemplates")
            .iter()
            .filter_map(|c| str_at(c, "/metadata/name"))
            .collect();
        let mut used = BTreeSet::new();
        for (list, c) in pod.containers() {
            let field = Pod::container_field(list, c);
            let mut paths = BTreeSet::new();
            for mount in array_at(c, "/volumeMounts") {
                let name = str_at(mount, "/name").unwrap_or("");
                let path = str_at(mount, "/mountPath").unwrap_or("");
                if !volumes.contains_key(name) && !claims.contains(name) {
                    self.fail(
                        doc,
                        &format!("{field}.volumeMounts[{name}]"),
                        "names no volume of the pod and no volumeClaimTemplate",
                    );
                }
                if !paths.insert(path) {
                    self.fail(
                        doc,
                        &format!("{field}.volumeMounts[{name}].mountPath"),
                        format!("{path} is mounted twice"),
                    );
                }
                used.insert(name.to_string());
            }
            for env in array_at(c, "/env") {
                let name = str_at(env, "/name").unwrap_or("?");
                for (kind, pointer) in [
                    ("Secret", "/valueFrom/secretKeyRef"),
                    ("ConfigMap", "/valueFrom/configMapKeyRef"),
                ] {
                    let Some(reference) = env.pointer(pointer) else {
                        continue;
                    };
                    if reference.pointer("/optional").and_then(Value::as_bool) == Some(true) {
                        continue;
                    }
                    let object = str_at(reference, "/name").unwrap_or("");
                    let key = str_at(reference, "/key").unwrap_or("");
                    if let Err(e) = self.key_text(kind, object, key) {
                        self.fail(doc, &format!("{field}.env[{name}]"), e);
                    }
                }
            }
            for env_from in array_at(c, "/envFrom") {
                for (kind, pointer) in [
                    ("Secret", "/secretRef/name"),
                    ("ConfigMap", "/configMapRef/name"),
                ] {
                    if let Some(object) = str_at(env_from, pointer) {
                        if self.find(kind, object).is_none() {
                            self.fail(
                                doc,
                                &format!("{field}.envFrom"),
                                format!("no {kind} named {object:?}"),
                            );
                        }
                    }
                }
            }
        }
        for (name, v) in &volumes {
            let field = format!("spec.template.spec.volumes[{name}]");
            if !used.contains(name) {
                self.fail(doc, &field, "mounted by no container");
            }
            for (kind, pointer, name_field) in [
                ("ConfigMap", "/configMap", "/name"),
                ("Secret", "/secret", "/secretName"),
            ] {
                let Some(source) = v.pointer(pointer) else {
                    continue;
                };
                let object = str_at(source, name_field).unwrap_or("");
                if self.find(kind, object).is_none() {
                    self.fail(doc, &field, format!("no {kind} named {object:?}"));
                    continue;
                }
                for item in array_at(source, "/items") {
                    let key = str_at(item, "/key").unwrap_or("");
                    if let Err(e) = self.key_text(kind, object, key) {
                        self.fail(doc, &format!("{field}.items[{key}]"), e);
                    }
                }
            }
        }
        if let Some(account) = str_at(pod.spec, "/serviceAccountName") {
            if self.find("ServiceAccount", account).is_none() {
                self.fail(
                    doc,
                    "spec.template.spec.serviceAccountName",
                    format!("no ServiceAccount named {account:?}"),
                );
            }
        }
    }

    /// The content of the file at `path` in the container, when a ConfigMap
    /// or Secret volume puts it there.
    fn mounted_file(&self, pod: &Pod<'a>, container: &Value, path: &str) -> Result<String, String> {
        let (mount, rel) = array_at(container, "/volumeMounts")
            .iter()
            .filter_map(|m| {
                let dir = str_at(m, "/mountPath")?.trim_end_matches('/');
                let rel = path.strip_prefix(dir)?.strip_prefix('/')?;
                Some((m, rel))
            })
            .max_by_key(|(m, _)| str_at(m, "/mountPath").map(str::len))
            .ok_or_else(|| format!("{path} is under no volumeMount of the container"))?;
        let volume_name = str_at(mount, "/name").unwrap_or("");
        let volume = array_at(pod.spec, "/volumes")
            .iter()
            .find(|v| str_at(v, "/name") == Some(volume_name))
            .ok_or_else(|| format!("{path}: volume {volume_name:?} is not a volume of the pod"))?;
        let (kind, source, object) = if let Some(s) = volume.pointer("/configMap") {
            ("ConfigMap", s, str_at(s, "/name"))
        } else if let Some(s) = volume.pointer("/secret") {
            ("Secret", s, str_at(s, "/secretName"))
        } else {
            return Err(format!(
                "{path}: volume {volume_name:?} is not a ConfigMap or Secret"
            ));
        };
        let object = object.unwrap_or("");
        let items = array_at(source, "/items");
        let key = if items.is_empty() {
            rel.to_string()
        } else {
            items
                .iter()
                .find(|i| str_at(i, "/path") == Some(rel))
                .and_then(|i| str_at(i, "/key"))
                .ok_or_else(|| {
                    format!("{path}: volume {volume_name:?} projects no item at {rel:?}")
                })?
                .to_string()
        };
        self.key_text(kind, object, &key)?.ok_or_else(|| {
            format!("{path}: {kind} {object:?} key {key:?} is base64 data; use stringData")
        })
    }

    /// Ports of probes; resources; and for Hearth containers: the command
    /// line against the binary, listen ports, probe paths, mounted configs.
    fn containers(&mut self, pod: &Pod<'a>) {
        let doc = pod.doc;
        for (list, c) in pod.containers() {
            let field = Pod::container_field(list, c);
            for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                for handler in ["httpGet", "tcpSocket", "grpc"] {
                    if let Some(port) = c.pointer(&format!("/{probe}/{handler}/port")) {
                        if container_port(c, port).is_none() {
                            self.fail(
                                doc,
                                &format!("{field}.{probe}.{handler}.port"),
                                format!("{port} is not a port of the container"),
                            );
                        }
                    }
                }
            }
            for bound in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    if c.pointer(&format!("/resources/{bound}/{resource}"))
                        .is_none()
                    {
                        self.fail(
                            doc,
                            &format!("{field}.resources.{bound}.{resource}"),
                            "missing",
                        );
                    }
                }
            }
            if is_hearth(c) {
                self.hearth_container(pod, &field, c);
            }
        }
    }

    fn hearth_container(&mut self, pod: &Pod<'a>, field: &str, c: &Value) {
        let doc = pod.doc;
        if str_at(c, "/imagePullPolicy") != Some("IfNotPresent") {
            self.fail(
                doc,
                &format!("{field}.imagePullPolicy"),
                "want IfNotPresent",
            );
        }
        if c.pointer("/command").is_some() {
            self.fail(
                doc,
                &format!("{field}.command"),
                "the image has only /usr/bin/hearth (its entrypoint): give args",
            );
        }
        let args = args_of(c);
        match args.first() {
            None => self.fail(
                doc,
                &format!("{field}.args"),
                "missing: the subcommand and its flags",
            ),
            Some(first) if first.starts_with('-') => self.fail(
                doc,
                &format!("{field}.args"),
                "must start with the subcommand",
            ),
            Some(_) => {
                if let Err(e) = check_args(&args) {
                    self.fail(
                        doc,
                        &format!("{field}.args"),
                        format!("hearth tools check-args rejects them: {e}"),
                    );
                }
            }
        }
        for (probe, path) in [
            ("readinessProbe", "/-/ready"),
            ("livenessProbe", "/-/healthy"),
        ] {
            let found = str_at(c, &format!("/{probe}/httpGet/path"));
            if found != Some(path) {
                self.fail(
                    doc,
                    &format!("{field}.{probe}.httpGet.path"),
                    format!("want {path}, found {found:?}"),
                );
            }
            let port = c
                .pointer(&format!("/{probe}/httpGet/port"))
                .cloned()
                .unwrap_or(Value::Null);
            if container_port(c, &port).is_none()
                || container_port(c, &port) != container_port(c, &Value::String("http".into()))
            {
                self.fail(
                    doc,
                    &format!("{field}.{probe}.httpGet.port"),
                    "want the container port named http",
                );
            }
        }
        // The ports the flags listen on are the ports the container declares.
        for (port_name, flags) in [
            ("http", &["--http-address", "--web.listen-address"][..]),
            ("grpc", &["--grpc-address"][..]),
        ] {
            let declared = container_port(c, &Value::String(port_name.into()));
            let listens: Vec<String> = flags.iter().flat_map(|f| flag_values(&args, f)).collect();
            match (declared, listens.as_slice()) {
                (None, []) => {}
                (Some(p), []) => self.fail(
                    doc,
                    &format!("{field}.args"),
                    format!(
                        "declares port {port_name} ({p}) but gives no {} flag",
                        flags.join("/")
                    ),
                ),
                (None, [address, ..]) => self.fail(
                    doc,
                    &format!("{field}.ports"),
                    format!("listens on {address} but declares no port named {port_name}"),
                ),
                (Some(p), [address, ..]) => {
                    if port_of(address) != Some(p) {
                        self.fail(
                            doc,
                            &format!("{field}.args"),
                            format!(
                                "{} {address} is not port {port_name} ({p})",
                                flags.join("/")
                            ),
                        );
                    }
                }
            }
        }
        // The scrapers' kubernetes-pods job keeps the pods annotated so.
        let scrape = doc
            .value
            .pointer("/spec/template/metadata/annotations/prometheus.io~1scrape")
            .and_then(Value::as_str);
        if scrape != Some("true") {
            self.fail(
                doc,
                "spec.template.metadata.annotations.prometheus.io/scrape",
                "want \"true\": the scrapers find Hearth pods by it",
            );
        }
        if let Some(path) = flag_values(&args, "--objstore.config-file").first() {
            match self.mounted_file(pod, c, path) {
                Err(e) => self.fail(doc, &format!("{field}.args --objstore.config-file"), e),
                Ok(text) => self.bucket_config(doc, field, &text),
            }
        }
        if let Some(path) = flag_values(&args, "--config.file").first() {
            match self.mounted_file(pod, c, path) {
                Err(e) => self.fail(doc, &format!("{field}.args --config.file"), e),
                Ok(text) => self.prometheus_config(pod, field, c, &args, path, &text),
            }
        }
    }

    /// Thanos objstore YAML as hearth-objstore loads it; an endpoint inside
    /// the namespace names a Service with that port; a MinIO of the
    /// manifests has these keys, and its Job makes this bucket.
    fn bucket_config(&mut self, doc: &Doc, field: &str, text: &str) {
        let field = format!("{field}.args --objstore.config-file");
        if let Err(e) = hearth_objstore::BucketConfig::from_yaml(text) {
            self.fail(doc, &field, format!("hearth-objstore rejects it: {e}"));
            return;
        }
        let Ok(value) = serde_saphyr::from_str::<Value>(text) else {
            return;
        };
        let endpoint = str_at(&value, "/config/endpoint").unwrap_or("");
        let suffix = format!(".{NAMESPACE}.svc");
        if let Some((host, port)) = endpoint.rsplit_once(':') {
            if let Some(service) = host.strip_suffix(&suffix) {
                let port: u64 = port.parse().unwrap_or(0);
                let ok = self.find("Service", service).is_some_and(|svc| {
                    array_at(&svc.value, "/spec/ports")
                        .iter()
                        .any(|p| p.pointer("/port").and_then(Value::as_u64) == Some(port))
                });
                if !ok {
                    self.fail(
                        doc,
                        &field,
                        format!(
                            "config.endpoint {endpoint}: no Service {service:?} with port {port}"
                        ),
                    );
                }
            }
        }
        // MinIO: its root user is the bucket's key, its Job makes the bucket.
        let env_value = |name: &str| -> Option<String> {
            self.pods().iter().find_map(|p| {
                p.containers().find_map(|(_, c)| {
                    let env = array_at(c, "/env")
                        .iter()
                        .find(|e| str_at(e, "/name") == Some(name))?;
                    if let Some(v) = str_at(env, "/value") {
                        return Some(v.to_string());
                    }
                    let r = env.pointer("/valueFrom/secretKeyRef")?;
                    self.key_text("Secret", str_at(r, "/name")?, str_at(r, "/key")?)
                        .ok()
                        .flatten()
                })
            })
        };
        let minio: Vec<(&str, &str, Option<String>)> = [
            ("MINIO_ROOT_USER", "access_key"),
            ("MINIO_ROOT_PASSWORD", "secret_key"),
        ]
        .into_iter()
        .map(|(env, key)| (env, key, env_value(env)))
        .collect();
        for (env, key, want) in minio {
            if let Some(want) = want {
                let found = str_at(&value, &format!("/config/{key}"));
                if found != Some(want.as_str()) {
                    self.fail(
                        doc,
                        &format!("{field} config.{key}"),
                        format!("is not MinIO's {env}"),
                    );
                }
            }
        }
        let bucket = str_at(&value, "/config/bucket").unwrap_or("");
        let jobs: Vec<&Doc> = self.m.docs.iter().filter(|d| d.kind() == "Job").collect();
        for job in jobs {
            let text = job
                .value
                .pointer("/spec/template")
                .map(Value::to_string)
                .unwrap_or_default();
            if text.contains("mc mb") && !text.contains(&format!("/{bucket}")) {
                self.fail(
                    doc,
                    &format!("{field} config.bucket"),
                    format!("{bucket:?} is not the bucket Job {} makes", job.name()),
                );
            }
        }
    }

    /// prometheus.yml as hearth-config loads it (and promtool when present);
    /// the external labels a shipping scraper needs, distinct per replica;
    /// Kubernetes discovery within the RBAC of the pod.
    fn prometheus_config(
        &mut self,
        pod: &Pod<'a>,
        field: &str,
        c: &Value,
        args: &[String],
        path: &str,
        text: &str,
    ) {
        let doc = pod.doc;
        let field = format!("{field}.args --config.file {path}");
        let config = match hearth_config::Config::parse(text) {
            Ok(config) => config,
            Err(e) => {
                self.fail(doc, &field, format!("hearth-config rejects it: {e}"));
                return;
            }
        };
        if self.promtool {
            // Debian's promtool is built without Kubernetes discovery: it
            // gets the configuration without kubernetes_sd_configs (the
            // jobs' relabeling kept), as JSON, which is YAML.
            let mut raw: Value = serde_saphyr::from_str(text).unwrap_or(Value::Null);
            if let Some(jobs) = raw.get_mut("scrape_configs").and_then(Value::as_array_mut) {
                for job in jobs.iter_mut().filter_map(Value::as_object_mut) {
                    job.remove("kubernetes_sd_configs");
                }
            }
            let dir = tempfile::tempdir().expect("temporary directory");
            let file = dir.path().join("prometheus.yml");
            let json = serde_json::to_string_pretty(&raw).expect("render the configuration");
            std::fs::write(&file, json).expect("write the configuration");
            let out = Command::new("promtool")
                .args(["check", "config"])
                .arg(&file)
                .output()
                .expect("run promtool");
            if !out.status.success() {
                self.fail(
                    doc,
                    &field,
                    format!(
                        "promtool check config rejects it: {}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ),
                );
            }
        }
        let labels = &config.global.external_labels;
        if has_flag(args, "--objstore.config-file") && labels.is_empty() {
            self.fail(
                doc,
                &format!("{field} global.external_labels"),
                "empty, but blocks are shipped (they need them)",
            );
        }
        // The labels as written, whose variables the container's env sets.
        let raw: Value = serde_saphyr::from_str(text).unwrap_or(Value::Null);
        let raw_labels = string_map(raw.pointer("/global/external_labels"));
        let env_names: BTreeSet<&str> = array_at(c, "/env")
            .iter()
            .filter_map(|e| str_at(e, "/name"))
            .collect();
        for (label, value) in &raw_labels {
            for var in referenced_vars(value) {
                if !env_names.contains(var.as_str()) {
                    self.fail(
                        doc,
                        &format!("{field} global.external_labels.{label}"),
                        format!("uses ${var}, which the container's env does not set"),
                    );
                }
            }
        }
        // Each replica's labels: a StatefulSet's metadata.name is its pod's.
        let replicas = pod.replicas();
        let mut per_replica = BTreeMap::new();
        for i in 0..replicas {
            let pod_name = format!("{}-{i}", doc.name());
            let env: BTreeMap<String, String> = array_at(c, "/env")
                .iter()
                .map(|e| {
                    let name = str_at(e, "/name").unwrap_or("").to_string();
                    let field_path = str_at(e, "/valueFrom/fieldRef/fieldPath");
                    let value = match (str_at(e, "/value"), field_path) {
                        (Some(v), _) => v.to_string(),
                        (None, Some("metadata.name")) if doc.kind() == "StatefulSet" => {
                            pod_name.clone()
                        }
                        (None, Some(path)) => format!("<{path}>"),
                        (None, None) => "<from elsewhere>".to_string(),
                    };
                    (name, value)
                })
                .collect();
            let expanded: BTreeMap<String, String> = raw_labels
                .iter()
                .map(|(k, v)| (k.clone(), expand(v, &env)))
                .filter(|(_, v)| !v.is_empty())
                .collect();
            if let Some(other) = per_replica.insert(expanded.clone(), pod_name.clone()) {
                self.fail(
                    doc,
                    &format!("{field} global.external_labels"),
                    format!(
                        "pods {other} and {pod_name} have the same external labels {expanded:?}"
                    ),
                );
            }
        }
        let replica_labels: BTreeSet<String> = self
            .pods()
            .iter()
            .flat_map(|p| p.containers().map(|(_, c)| args_of(c)).collect::<Vec<_>>())
            .filter(|a| a.first().map(String::as_str) == Some("query"))
            .flat_map(|a| flag_values(&a, "--query.replica-label"))
            .collect();
        if replicas > 1 && !labels.keys().any(|k| replica_labels.contains(k)) {
            self.fail(
                doc,
                &format!("{field} global.external_labels"),
                format!(
                    "none is a --query.replica-label of the querier ({replica_labels:?}), \
                     so its replicas are not deduplicated"
                ),
            );
        }
        self.discovery_rbac(pod, &field, text);
    }

    /// kubernetes_sd_configs: own namespace only, and the pod's service
    /// account may list and watch what the role reads.
    fn discovery_rbac(&mut self, pod: &Pod<'a>, field: &str, text: &str) {
        let doc = pod.doc;
        let raw: Value = serde_saphyr::from_str(text).unwrap_or(Value::Null);
        for job in array_at(&raw, "/scrape_configs") {
            let job_name = str_at(job, "/job_name").unwrap_or("?");
            for (i, sd) in array_at(job, "/kubernetes_sd_configs").iter().enumerate() {
                let sd_field =
                    format!("{field} scrape_configs[{job_name}].kubernetes_sd_configs[{i}]");
                let names: Vec<&str> = array_at(sd, "/namespaces/names")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                if names != [NAMESPACE] {
                    self.fail(
                        doc,
                        &format!("{sd_field}.namespaces.names"),
                        format!(
                            "want [{NAMESPACE}] (a Role grants one namespace), found {names:?}"
                        ),
                    );
                }
                let needed: &[(&str, &str)] = match str_at(sd, "/role").unwrap_or("") {
                    "pod" => &[("", "pods")],
                    "service" => &[("", "services")],
                    "endpoints" => &[("", "endpoints"), ("", "pods"), ("", "services")],
                    "endpointslice" => &[
                        ("discovery.k8s.io", "endpointslices"),
                        ("", "pods"),
                        ("", "services"),
                    ],
                    "ingress" => &[("networking.k8s.io", "ingresses")],
                    _ => &[],
                };
                let account = str_at(pod.spec, "/serviceAccountName").unwrap_or("default");
                for (group, resource) in needed {
                    for verb in ["list", "watch"] {
                        if !self.may(account, group, resource, verb) {
                            self.fail(
                                doc,
                                &sd_field,
                                format!(
                                    "service account {account:?} may not {verb} {resource} \
                                 (no Role bound to it grants it)"
                                ),
                            );
                        }
                    }
                }
            }
        }
    }

    /// Whether a Role bound to `account` grants `verb` on `resource`.
    fn may(&self, account: &str, group: &str, resource: &str, verb: &str) -> bool {
        self.m
            .docs
            .iter()
            .filter(|d| d.kind() == "RoleBinding")
            .any(|binding| {
                let bound = array_at(&binding.value, "/subjects").iter().any(|s| {
                    str_at(s, "/kind") == Some("ServiceAccount")
                        && str_at(s, "/name") == Some(account)
                });
                let role = str_at(&binding.value, "/roleRef/name").unwrap_or("");
                bound
                    && str_at(&binding.value, "/roleRef/kind") == Some("Role")
                    && self.find("Role", role).is_some_and(|r| {
                        array_at(&r.value, "/rules").iter().any(|rule| {
                            let has = |list: &str, want: &str| {
                                array_at(rule, list)
                                    .iter()
                                    .any(|v| v.as_str() == Some(want) || v.as_str() == Some("*"))
                            };
                            has("/apiGroups", group)
                                && has("/resources", resource)
                                && has("/verbs", verb)
                        })
                    })
            })
    }

    /// Services and disruption budgets select pods, whose ports they name.
    fn services(&mut self) {
        let docs: Vec<&Doc> = self
            .m
            .docs
            .iter()
            .filter(|d| d.kind() == "Service" || d.kind() == "PodDisruptionBudget")
            .collect();
        for doc in docs {
            let (pointer, field) = if doc.kind() == "Service" {
                ("/spec/selector", "spec.selector")
            } else {
                ("/spec/selector/matchLabels", "spec.selector.matchLabels")
            };
            let selector = string_map(doc.value.pointer(pointer));
            let pods = self.selected(&selector);
            if pods.is_empty() {
                self.fail(doc, field, format!("{selector:?} selects no pod template"));
                continue;
            }
            for port in array_at(&doc.value, "/spec/ports") {
                let name = str_at(port, "/name").unwrap_or("?");
                let target = port
                    .pointer("/targetPort")
                    .or_else(|| port.pointer("/port"))
                    .cloned()
                    .unwrap_or(Value::Null);
                for pod in &pods {
                    if !pod.has_port(&target) {
                        self.fail(
                            doc,
                            &format!("spec.ports[{name}].targetPort"),
                            format!(
                                "{target} is not a container port of {} {}",
                                pod.doc.kind(),
                                pod.doc.name()
                            ),
                        );
                    }
                }
            }
        }
    }

    /// RoleBindings name a Role and ServiceAccounts that exist.
    fn rbac(&mut self) {
        let docs: Vec<&Doc> = self
            .m
            .docs
            .iter()
            .filter(|d| d.kind() == "RoleBinding")
            .collect();
        for doc in docs {
            let role = str_at(&doc.value, "/roleRef/name").unwrap_or("");
            if str_at(&doc.value, "/roleRef/kind") != Some("Role")
                || self.find("Role", role).is_none()
            {
                self.fail(doc, "roleRef", format!("no Role named {role:?}"));
            }
            for s in array_at(&doc.value, "/subjects") {
                let name = str_at(s, "/name").unwrap_or("");
                if str_at(s, "/kind") == Some("ServiceAccount")
                    && self.find("ServiceAccount", name).is_none()
                {
                    self.fail(doc, &format!("subjects[{name}]"), "no such ServiceAccount");
                }
            }
        }
    }

    /// `hearth ingest` runs in a StatefulSet whose `--peers` are exactly its
    /// pods through its headless Service, ids from the ordinals plus 1.
    fn ingesters(&mut self) {
        for pod in self.pods() {
            let doc = pod.doc;
            for (list, c) in pod.containers() {
                let args = args_of(c);
                if !is_hearth(c) || args.first().map(String::as_str) != Some("ingest") {
                    continue;
                }
                let field = format!("{}.args", Pod::container_field(list, c));
                if doc.kind() != "StatefulSet" {
                    self.fail(
                        doc,
                        "kind",
                        "ingesters need a StatefulSet (stable names, volumes)",
                    );
                    continue;
                }
                let replicas = pod.replicas();
                if !has_flag(&args, "--node-id-from-hostname") || has_flag(&args, "--node-id") {
                    self.fail(
                        doc,
                        &field,
                        "one template serves every pod: \
                         want --node-id-from-hostname, not --node-id",
                    );
                }
                let service = str_at(&doc.value, "/spec/serviceName").unwrap_or("");
                let grpc = container_port(c, &Value::String("grpc".into())).unwrap_or(0);
                let want: BTreeSet<String> = (0..replicas)
                    .map(|i| {
                        format!(
                            "{}={}-{i}.{service}.{NAMESPACE}.svc:{grpc}",
                            i + 1,
                            doc.name()
                        )
                    })
                    .collect();
                let peers: Vec<String> = flag_values(&args, "--peers")
                    .iter()
                    .flat_map(|v| {
                        v.split(',')
                            .map(|p| p.trim().to_string())
                            .collect::<Vec<_>>()
                    })
                    .collect();
                let found: BTreeSet<String> = peers.iter().cloned().collect();
                if peers.len() as u64 != replicas || found != want {
                    self.fail(
                        doc,
                        &format!("{field} --peers"),
                        format!("want the {replicas} pods {want:?}, found {peers:?}"),
                    );
                }
                if let Some(rf) = flag_values(&args, "--replication-factor").first() {
                    if rf.parse::<u64>().map_or(true, |rf| rf > replicas) {
                        self.fail(
                            doc,
                            &format!("{field} --replication-factor"),
                            format!("{rf} is more than the {replicas} replicas"),
                        );
                    }
                }
                if str_at(&doc.value, "/spec/podManagementPolicy") != Some("Parallel") {
                    self.fail(
                        doc,
                        "spec.podManagementPolicy",
                        "want Parallel: an ingester is ready only with a quorum of its peers, \
                         so pods started in order wait forever",
                    );
                }
                if let Some(svc) = self.find("Service", service) {
                    if svc
                        .value
                        .pointer("/spec/publishNotReadyAddresses")
                        .and_then(Value::as_bool)
                        != Some(true)
                    {
                        self.fail(
                            svc,
                            "spec.publishNotReadyAddresses",
                            "want true: peers must resolve each other before they are ready",
                        );
                    }
                }
            }
        }
    }

    /// The querier's endpoints name headless Services with a grpc port, and
    /// reach every pod serving StoreAPI.
    fn querier(&mut self) {
        let mut reached: BTreeSet<String> = BTreeSet::new();
        let mut first_querier = None;
        for pod in self.pods() {
            let doc = pod.doc;
            for (list, c) in pod.containers() {
                let args = args_of(c);
                if !is_hearth(c) || args.first().map(String::as_str) != Some("query") {
                    continue;
                }
                first_querier.get_or_insert(doc);
                let field = format!("{}.args --endpoint", Pod::container_field(list, c));
                if flag_values(&args, "--query.replica-label").is_empty() {
                    self.fail(
                        doc,
                        &format!("{}.args", Pod::container_field(list, c)),
                        "no --query.replica-label: replicas are not deduplicated",
                    );
                }
                for endpoint in flag_values(&args, "--endpoint") {
                    let suffix = format!(".{NAMESPACE}.svc");
                    let (service, port) = if let Some(name) = endpoint.strip_prefix("dnssrv+") {
                        let Some(host) = name.strip_prefix("_grpc._tcp.") else {
                            self.fail(
                                doc,
                                &field,
                                format!("{endpoint}: want dnssrv+_grpc._tcp.<service>{suffix}"),
                            );
                            continue;
                        };
                        (
                            host.trim_end_matches(".cluster.local")
                                .strip_suffix(&suffix),
                            None,
                        )
                    } else {
                        let address = endpoint.strip_prefix("dns+").unwrap_or(&endpoint);
                        let Some((host, port)) = address.rsplit_once(':') else {
                            self.fail(doc, &field, format!("{endpoint}: want host:port"));
                            continue;
                        };
                        (
                            host.trim_end_matches(".cluster.local")
                                .strip_suffix(&suffix),
                            port.parse::<u64>().ok(),
                        )
                    };
                    let Some(service) = service else {
                        self.fail(
                            doc,
                            &field,
                            format!("{endpoint}: not a Service of the namespace {NAMESPACE}"),
                        );
                        continue;
                    };
                    let Some(svc) = self.find("Service", service) else {
                        self.fail(
                            doc,
                            &field,
                            format!("{endpoint}: no Service named {service:?}"),
                        );
                        continue;
                    };
                    let ports = array_at(&svc.value, "/spec/ports");
                    let ok = match port {
                        None => ports.iter().any(|p| str_at(p, "/name") == Some("grpc")),
                        Some(n) => ports
                            .iter()
                            .any(|p| p.pointer("/port").and_then(Value::as_u64) == Some(n)),
                    };
                    if !ok {
                        self.fail(
                            doc,
                            &field,
                            format!(
                                "{endpoint}: Service {service:?} has no such port \
                             (SRV names the port \"grpc\")"
                            ),
                        );
                    }
                    if port.is_none() && str_at(&svc.value, "/spec/clusterIP") != Some("None") {
                        self.fail(
                            doc,
                            &field,
                            format!(
                                "{endpoint}: Service {service:?} is not headless, \
                             so SRV gives one record, not one per pod"
                            ),
                        );
                    }
                    let selector = string_map(svc.value.pointer("/spec/selector"));
                    for p in self.selected(&selector) {
                        reached.insert(format!("{} {}", p.doc.kind(), p.doc.name()));
                    }
                }
            }
        }
        let Some(querier) = first_querier else {
            self.problems
                .push("no hearth query container in the manifests".into());
            return;
        };
        for pod in self.pods() {
            let serves = pod.containers().any(|(_, c)| {
                is_hearth(c)
                    && container_port(c, &Value::String("grpc".into())).is_some()
                    && args_of(c).first().map(String::as_str) != Some("query")
            });
            let name = format!("{} {}", pod.doc.kind(), pod.doc.name());
            if serves && !reached.contains(&name) {
                self.fail(
                    querier,
                    "spec.template.spec.containers args --endpoint",
                    format!(
                        "no endpoint reaches the StoreAPI of {name} ({})",
                        pod.doc.file
                    ),
                );
            }
        }
    }
}

fn validate(m: &Manifests) -> Vec<String> {
    Checker {
        m,
        problems: Vec::new(),
        promtool: promtool_available(),
    }
    .run()
}

#[test]
fn manifests_are_consistent_and_hearth_accepts_them() {
    let m = load(&manifests_dir());
    assert!(
        m.docs.len() >= 10,
        "deploy/kubernetes: only {} documents found",
        m.docs.len()
    );
    let kinds: BTreeSet<&str> = m.docs.iter().map(Doc::kind).collect();
    for kind in [
        "Namespace",
        "Secret",
        "ConfigMap",
        "StatefulSet",
        "Deployment",
        "Service",
        "Job",
        "Kustomization",
    ] {
        assert!(kinds.contains(kind), "deploy/kubernetes: no {kind}");
    }
    if !promtool_available() {
        eprintln!(
            "promtool is not on the PATH: \
             the scrape configuration is checked by hearth-config only"
        );
    }
    let problems = validate(&m);
    assert!(
        problems.is_empty(),
        "{} problems in deploy/kubernetes:\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// The manifests' parts the checks must find, whatever else changes.
#[test]
fn manifests_name_the_expected_components() {
    let m = load(&manifests_dir());
    let find = |kind: &str, name: &str| {
        m.docs
            .iter()
            .find(|d| d.kind() == kind && d.name() == name)
            .unwrap_or_else(|| panic!("deploy/kubernetes: no {kind} {name}"))
    };
    let ingest = find("StatefulSet", "hearth-ingest");
    assert_eq!(
        ingest.value.pointer("/spec/replicas"),
        Some(&Value::from(3)),
        "{}",
        ingest.at("spec.replicas")
    );
    let scrape = find("StatefulSet", "hearth-scrape");
    assert_eq!(
        scrape.value.pointer("/spec/replicas"),
        Some(&Value::from(2)),
        "{}",
        scrape.at("spec.replicas")
    );
    find("Deployment", "hearth-query");
    find("Deployment", "hearth-store");
    find("StatefulSet", "minio");
    find("Job", "minio-make-bucket");
    find("Secret", "hearth-bucket");
    find("ServiceAccount", "hearth-scrape");
    let query = find("Service", "hearth-query");
    assert_eq!(
        query.value.pointer("/spec/ports/0/port"),
        Some(&Value::from(9090)),
        "{}",
        query.at("spec.ports")
    );
    for service in ["hearth-ingest", "hearth-scrape", "hearth-store"] {
        let svc = find("Service", service);
        assert_eq!(
            str_at(&svc.value, "/spec/clusterIP"),
            Some("None"),
            "{}",
            svc.at("spec.clusterIP")
        );
    }
}

fn doc_mut<'a>(m: &'a mut Manifests, kind: &str, name: &str) -> &'a mut Value {
    &mut m
        .docs
        .iter_mut()
        .find(|d| d.kind() == kind && d.name() == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .value
}

/// Replaces `from` with `to` in the text at `pointer` of a document.
fn replace_text(m: &mut Manifests, kind: &str, name: &str, pointer: &str, from: &str, to: &str) {
    let text = doc_mut(m, kind, name)
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in {kind} {name}"));
    *text = text.as_str().expect("text").replace(from, to).into();
}

fn hearth_args<'a>(m: &'a mut Manifests, kind: &str, name: &str) -> &'a mut Vec<Value> {
    doc_mut(m, kind, name)
        .pointer_mut("/spec/template/spec/containers/0/args")
        .and_then(Value::as_array_mut)
        .unwrap_or_else(|| panic!("{kind} {name}: no args"))
}

/// Breaks one thing at a time in a copy and expects a problem naming it.
#[test]
fn broken_manifests_are_caught() {
    let original = load(&manifests_dir());
    type Breakage = Box<dyn Fn(&mut Manifests)>;
    let cases: Vec<(&str, Breakage, &[&str])> = vec![
        (
            "pod labels no longer match the selector",
            Box::new(|m| {
                doc_mut(m, "StatefulSet", "hearth-ingest")["spec"]["template"]["metadata"]
                    ["labels"]["app.kubernetes.io/component"] = "ingester".into();
            }),
            &[
                "ingest.yaml",
                "StatefulSet hearth-ingest",
                "spec.selector.matchLabels",
            ],
        ),
        (
            "a flag hearth does not have",
            Box::new(|m| {
                hearth_args(m, "Deployment", "hearth-store").push("--no-such-flag=1".into())
            }),
            &[
                "store.yaml",
                "containers[hearth].args",
                "check-args",
                "--no-such-flag",
            ],
        ),
        (
            "a flag of another subcommand",
            Box::new(|m| hearth_args(m, "Deployment", "hearth-query").push("--shards=4".into())),
            &["query.yaml", "check-args", "--shards"],
        ),
        (
            "an ingester missing from --peers",
            Box::new(|m| {
                for arg in hearth_args(m, "StatefulSet", "hearth-ingest").iter_mut() {
                    if let Some(peers) = arg.as_str().and_then(|a| a.strip_prefix("--peers=")) {
                        let kept: Vec<&str> = peers.split(',').take(2).collect();
                        *arg = format!("--peers={}", kept.join(",")).into();
                    }
                }
            }),
            &["ingest.yaml", "--peers", "want the 3 pods"],
        ),
        (
            "a fourth ingester not in --peers",
            Box::new(|m| doc_mut(m, "StatefulSet", "hearth-ingest")["spec"]["replicas"] = 4.into()),
            &["ingest.yaml", "--peers", "want the 4 pods"],
        ),
        (
            "a ConfigMap key that is not there",
            Box::new(|m| {
                let data = doc_mut(m, "ConfigMap", "hearth-scrape")["data"]
                    .as_object_mut()
                    .expect("data");
                let text = data.remove("prometheus.yml").expect("prometheus.yml");
                data.insert("scrape.yml".into(), text);
            }),
            &[
                "scrape.yaml",
                "volumes[config].items[prometheus.yml]",
                "no key \"prometheus.yml\"",
            ],
        ),
        (
            "a scrape configuration hearth rejects",
            Box::new(|m| {
                replace_text(
                    m,
                    "ConfigMap",
                    "hearth-scrape",
                    "/data/prometheus.yml",
                    "scrape_interval: 15s",
                    "scrape_interval: 15",
                )
            }),
            &[
                "scrape.yaml",
                "--config.file",
                "hearth-config rejects it",
                "scrape_interval",
            ],
        ),
        (
            "scraper replicas with the same labels",
            Box::new(|m| {
                replace_text(
                    m,
                    "ConfigMap",
                    "hearth-scrape",
                    "/data/prometheus.yml",
                    "${POD_NAME}",
                    "a",
                )
            }),
            &[
                "scrape.yaml",
                "external_labels",
                "hearth-scrape-0 and hearth-scrape-1",
            ],
        ),
        (
            "a file the kustomization does not list",
            Box::new(|m| {
                let k = m
                    .docs
                    .iter_mut()
                    .find(|d| d.kind() == "Kustomization")
                    .expect("kustomization");
                let resources = k.value["resources"].as_array_mut().expect("resources");
                resources.retain(|r| r.as_str() != Some("query.yaml"));
            }),
            &[
                "kustomization.yaml",
                "resources",
                "does not list query.yaml",
            ],
        ),
        (
            "a probe on a port the container does not have",
            Box::new(|m| {
                doc_mut(m, "Deployment", "hearth-store")["spec"]["template"]["spec"]
                    ["containers"][0]["readinessProbe"]["httpGet"]["port"] = "metrics".into();
            }),
            &["store.yaml", "readinessProbe.httpGet.port"],
        ),
        (
            "a Service selecting nothing",
            Box::new(|m| {
                doc_mut(m, "Service", "hearth-store")["spec"]["selector"]
                    ["app.kubernetes.io/component"] = "gateway".into();
            }),
            &[
                "store.yaml",
                "Service hearth-store",
                "spec.selector",
                "selects no pod template",
            ],
        ),
        (
            "the store gateway out of the querier's endpoints",
            Box::new(|m| {
                hearth_args(m, "Deployment", "hearth-query")
                    .retain(|a| !a.as_str().unwrap_or("").contains("hearth-store"));
            }),
            &["query.yaml", "--endpoint", "Deployment hearth-store"],
        ),
        (
            "a mount of a volume that does not exist",
            Box::new(|m| {
                doc_mut(m, "Deployment", "hearth-query")["spec"]["template"]["spec"]
                    ["containers"][0]["volumeMounts"][0]["name"] = "scratch".into();
            }),
            &["query.yaml", "volumeMounts[scratch]", "names no volume"],
        ),
        (
            "a Secret key the env refers to",
            Box::new(|m| {
                let data = doc_mut(m, "Secret", "minio")["stringData"]
                    .as_object_mut()
                    .expect("stringData");
                data.remove("root-password");
            }),
            &[
                "minio.yaml",
                "env[MINIO_ROOT_PASSWORD]",
                "no key \"root-password\"",
            ],
        ),
        (
            "the scrapers without RBAC for pods",
            Box::new(|m| {
                doc_mut(m, "Role", "hearth-scrape")["rules"][0]["resources"] =
                    serde_json::json!(["services", "endpoints"]);
            }),
            &[
                "scrape.yaml",
                "kubernetes_sd_configs[0]",
                "may not list pods",
            ],
        ),
        (
            "a replica label from a variable the pod does not set",
            Box::new(|m| {
                let env = doc_mut(m, "StatefulSet", "hearth-scrape")["spec"]["template"]["spec"]
                    ["containers"][0]["env"]
                    .as_array_mut()
                    .expect("env");
                env.retain(|e| e["name"] != "POD_NAME");
            }),
            &["scrape.yaml", "external_labels.replica", "uses $POD_NAME"],
        ),
        (
            "one fixed node id for every ingester",
            Box::new(|m| hearth_args(m, "StatefulSet", "hearth-ingest").push("--node-id=1".into())),
            &["ingest.yaml", "check-args", "--node-id"],
        ),
        (
            "bucket keys that are not MinIO's",
            Box::new(|m| {
                replace_text(
                    m,
                    "Secret",
                    "hearth-bucket",
                    "/stringData/bucket.yml",
                    "access_key: hearth",
                    "access_key: admin",
                )
            }),
            &[
                "--objstore.config-file",
                "config.access_key",
                "MINIO_ROOT_USER",
            ],
        ),
        (
            "a bucket type hearth does not know",
            Box::new(|m| {
                replace_text(
                    m,
                    "Secret",
                    "hearth-bucket",
                    "/stringData/bucket.yml",
                    "type: S3",
                    "type: AZURE",
                )
            }),
            &[
                "ingest.yaml",
                "--objstore.config-file",
                "hearth-objstore rejects it",
            ],
        ),
    ];
    for (what, break_it, expected) in cases {
        let mut m = original.clone();
        break_it(&mut m);
        let problems = validate(&m);
        let hit = problems
            .iter()
            .any(|p| expected.iter().all(|e| p.contains(e)));
        assert!(
            hit,
            "{what}: want a problem mentioning {expected:?}, got:\n  {}",
            problems.join("\n  ")
        );
    }
}
