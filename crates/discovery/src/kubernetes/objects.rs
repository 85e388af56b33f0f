//! The Kubernetes objects discovery reads (only the fields it uses), their
//! list and watch-event envelopes, and the stores of the latest objects.

use std::collections::BTreeMap;

use hearth_config::discovery::KubernetesRole;
use serde::Deserialize;

/// The kinds of objects watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    Node,
    Pod,
    Service,
    Endpoints,
    EndpointSlice,
}

impl Kind {
    pub(crate) fn of_role(role: KubernetesRole) -> Option<Kind> {
        match role {
            KubernetesRole::Node => Some(Kind::Node),
            KubernetesRole::Pod => Some(Kind::Pod),
            KubernetesRole::Service => Some(Kind::Service),
            KubernetesRole::Endpoints => Some(Kind::Endpoints),
            KubernetesRole::EndpointSlice => Some(Kind::EndpointSlice),
            KubernetesRole::Ingress => None,
        }
    }

    pub(crate) fn api_prefix(self) -> &'static str {
        match self {
            Kind::EndpointSlice => "/apis/discovery.k8s.io/v1",
            _ => "/api/v1",
        }
    }

    pub(crate) fn resource(self) -> &'static str {
        match self {
            Kind::Node => "nodes",
            Kind::Pod => "pods",
            Kind::Service => "services",
            Kind::Endpoints => "endpoints",
            Kind::EndpointSlice => "endpointslices",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ObjectMeta {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub resource_version: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub owner_references: Vec<OwnerReference>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct OwnerReference {
    pub kind: String,
    pub name: String,
    pub controller: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ObjectReference {
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Pod {
    pub metadata: ObjectMeta,
    pub spec: PodSpec,
    pub status: PodStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct PodSpec {
    pub node_name: String,
    pub containers: Vec<Container>,
    pub init_containers: Vec<Container>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Container {
    pub name: String,
    pub image: String,
    pub ports: Vec<ContainerPort>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ContainerPort {
    pub name: String,
    pub container_port: i32,
    pub protocol: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct PodStatus {
    pub phase: String,
    #[serde(rename = "podIP")]
    pub pod_ip: String,
    #[serde(rename = "hostIP")]
    pub host_ip: String,
    pub conditions: Vec<Condition>,
    pub container_statuses: Vec<ContainerStatus>,
    pub init_container_statuses: Vec<ContainerStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ContainerStatus {
    pub name: String,
    #[serde(rename = "containerID")]
    pub container_id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Service {
    pub metadata: ObjectMeta,
    pub spec: ServiceSpec,
    pub status: ServiceStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ServiceSpec {
    pub ports: Vec<ServicePort>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "clusterIP")]
    pub cluster_ip: String,
    pub external_name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ServicePort {
    pub name: String,
    pub port: i32,
    pub protocol: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ServiceStatus {
    pub load_balancer: LoadBalancerStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LoadBalancerStatus {
    pub ingress: Vec<LoadBalancerIngress>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LoadBalancerIngress {
    pub ip: String,
    pub hostname: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Endpoints {
    pub metadata: ObjectMeta,
    pub subsets: Vec<EndpointSubset>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct EndpointSubset {
    pub addresses: Vec<EndpointAddress>,
    pub not_ready_addresses: Vec<EndpointAddress>,
    pub ports: Vec<EndpointPort>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct EndpointAddress {
    pub ip: String,
    pub hostname: String,
    pub node_name: Option<String>,
    pub target_ref: Option<ObjectReference>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EndpointPort {
    pub name: String,
    pub port: i32,
    pub protocol: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct EndpointSlice {
    pub metadata: ObjectMeta,
    pub address_type: String,
    pub endpoints: Vec<SliceEndpoint>,
    pub ports: Vec<SlicePort>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct SliceEndpoint {
    pub addresses: Vec<String>,
    pub conditions: SliceConditions,
    pub hostname: Option<String>,
    pub node_name: Option<String>,
    pub zone: Option<String>,
    pub target_ref: Option<ObjectReference>,
    pub deprecated_topology: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SliceConditions {
    pub ready: Option<bool>,
    pub serving: Option<bool>,
    pub terminating: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct SlicePort {
    pub name: Option<String>,
    pub port: Option<i32>,
    pub protocol: Option<String>,
    pub app_protocol: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Node {
    pub metadata: ObjectMeta,
    pub spec: NodeSpec,
    pub status: NodeStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct NodeSpec {
    #[serde(rename = "providerID")]
    pub provider_id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct NodeStatus {
    pub addresses: Vec<NodeAddress>,
    pub daemon_endpoints: DaemonEndpoints,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct NodeAddress {
    #[serde(rename = "type")]
    pub kind: String,
    pub address: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct DaemonEndpoints {
    pub kubelet_endpoint: KubeletEndpoint,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct KubeletEndpoint {
    pub port: i32,
}

/// An object of one of the watched kinds.
#[derive(Debug, Clone)]
pub(crate) enum Object {
    Node(Node),
    Pod(Pod),
    Service(Service),
    Endpoints(Endpoints),
    EndpointSlice(EndpointSlice),
}

impl Object {
    fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Node(o) => &o.metadata,
            Object::Pod(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::Endpoints(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Object::Node(_) => Kind::Node,
            Object::Pod(_) => Kind::Pod,
            Object::Service(_) => Kind::Service,
            Object::Endpoints(_) => Kind::Endpoints,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
        }
    }

    fn parse(kind: Kind, value: serde_json::Value) -> serde_json::Result<Object> {
        Ok(match kind {
            Kind::Node => Object::Node(serde_json::from_value(value)?),
            Kind::Pod => Object::Pod(serde_json::from_value(value)?),
            Kind::Service => Object::Service(serde_json::from_value(value)?),
            Kind::Endpoints => Object::Endpoints(serde_json::from_value(value)?),
            Kind::EndpointSlice => Object::EndpointSlice(serde_json::from_value(value)?),
        })
    }
}

/// A list response: its items and resource version.
pub(crate) fn parse_list(kind: Kind, body: &[u8]) -> serde_json::Result<(Vec<Object>, String)> {
    #[derive(Deserialize)]
    struct List {
        #[serde(default)]
        metadata: ObjectMeta,
        #[serde(default)]
        items: Option<Vec<serde_json::Value>>,
    }
    let list: List = serde_json::from_slice(body)?;
    let objects = list
        .items
        .unwrap_or_default()
        .into_iter()
        .map(|v| Object::parse(kind, v))
        .collect::<serde_json::Result<_>>()?;
    Ok((objects, list.metadata.resource_version))
}

/// A watch event: ADDED, MODIFIED, DELETED or BOOKMARK and its object.
#[derive(Debug, Clone)]
pub(crate) struct WatchEvent {
    kind: String,
    object: Object,
}

impl WatchEvent {
    pub(crate) fn resource_version(&self) -> Option<&str> {
        let version = &self.object.metadata().resource_version;
        (!version.is_empty()).then_some(version.as_str())
    }

    pub(crate) fn is_bookmark(&self) -> bool {
        self.kind == "BOOKMARK"
    }
}

/// One line of a watch stream; an ERROR event is an error (the watch must
/// start again from a list).
pub(crate) fn parse_event(kind: Kind, line: &[u8]) -> Result<WatchEvent, String> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(rename = "type")]
        kind: String,
        object: serde_json::Value,
    }
    let raw: Raw = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if raw.kind == "ERROR" {
        return Err(format!("watch error: {}", raw.object));
    }
    let object = Object::parse(kind, raw.object).map_err(|e| e.to_string())?;
    Ok(WatchEvent {
        kind: raw.kind,
        object,
    })
}

/// The latest objects per kind, by `namespace/name`.
#[derive(Debug, Default)]
pub(crate) struct Stores {
    pub nodes: BTreeMap<String, Node>,
    pub pods: BTreeMap<String, Pod>,
    pub services: BTreeMap<String, Service>,
    pub endpoints: BTreeMap<String, Endpoints>,
    pub endpoint_slices: BTreeMap<String, EndpointSlice>,
}

pub(crate) fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl Stores {
    /// Replaces the objects of a kind in a namespace ("" for all).
    pub(crate) fn replace(&mut self, kind: Kind, namespace: &str, objects: Vec<Object>) {
        fn keep<T>(store: &mut BTreeMap<String, T>, namespace: &str) {
            if namespace.is_empty() {
                store.clear();
            } else {
                store.retain(|k, _| !k.starts_with(&format!("{namespace}/")));
            }
        }
        match kind {
            Kind::Node => keep(&mut self.nodes, namespace),
            Kind::Pod => keep(&mut self.pods, namespace),
            Kind::Service => keep(&mut self.services, namespace),
            Kind::Endpoints => keep(&mut self.endpoints, namespace),
            Kind::EndpointSlice => keep(&mut self.endpoint_slices, namespace),
        }
        for object in objects {
            self.put(object);
        }
    }

    fn put(&mut self, object: Object) {
        let meta = object.metadata();
        let k = key(&meta.namespace, &meta.name);
        match object {
            Object::Node(o) => {
                self.nodes.insert(k, o);
            }
            Object::Pod(o) => {
                self.pods.insert(k, o);
            }
            Object::Service(o) => {
                self.services.insert(k, o);
            }
            Object::Endpoints(o) => {
                self.endpoints.insert(k, o);
            }
            Object::EndpointSlice(o) => {
                self.endpoint_slices.insert(k, o);
            }
        }
    }

    pub(crate) fn apply(&mut self, event: WatchEvent) {
        if event.kind != "DELETED" {
            self.put(event.object);
            return;
        }
        let meta = event.object.metadata();
        let k = key(&meta.namespace, &meta.name);
        match event.object.kind() {
            Kind::Node => {
                self.nodes.remove(&k);
            }
            Kind::Pod => {
                self.pods.remove(&k);
            }
            Kind::Service => {
                self.services.remove(&k);
            }
            Kind::Endpoints => {
                self.endpoints.remove(&k);
            }
            Kind::EndpointSlice => {
                self.endpoint_slices.remove(&k);
            }
        }
    }
}
