//! The target groups of each role from the stored objects, with the meta
//! labels of Prometheus's Kubernetes discovery (`__meta_kubernetes_*`).

use std::collections::BTreeMap;

use hearth_config::discovery::KubernetesRole;
use hearth_model::Labels;

use super::objects::{
    key, Container, EndpointSlice, Endpoints, Node, ObjectMeta, ObjectReference, Pod, Service,
    Stores,
};
use crate::{
    join_host_port, labels_without_empty, sanitize_label_name, TargetGroup, ADDRESS_LABEL,
};

const PREFIX: &str = "__meta_kubernetes_";

/// Label name and value pairs being built; empty values are dropped at the
/// end.
type Pairs = Vec<(String, String)>;

fn meta(name: &str) -> String {
    format!("{PREFIX}{name}")
}

fn push(pairs: &mut Pairs, name: &str, value: impl Into<String>) {
    pairs.push((meta(name), value.into()));
}

/// Later pairs of the same name win, as Go's map assignments.
fn finish(pairs: Pairs) -> Labels {
    let mut unique: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in pairs {
        unique.insert(k, v);
    }
    labels_without_empty(unique.into_iter().collect())
}

/// Every group of the role, by source.
pub(crate) fn build(role: KubernetesRole, stores: &Stores) -> BTreeMap<String, TargetGroup> {
    let groups: Vec<TargetGroup> = match role {
        KubernetesRole::Node => stores.nodes.values().map(node_group).collect(),
        KubernetesRole::Pod => stores.pods.values().map(pod_group).collect(),
        KubernetesRole::Service => stores.services.values().map(service_group).collect(),
        KubernetesRole::Endpoints => stores
            .endpoints
            .values()
            .map(|e| endpoints_group(e, stores))
            .collect(),
        KubernetesRole::EndpointSlice => stores
            .endpoint_slices
            .values()
            .map(|e| endpoint_slice_group(e, stores))
            .collect(),
        KubernetesRole::Ingress => Vec::new(),
    };
    groups.into_iter().map(|g| (g.source.clone(), g)).collect()
}

/// `addObjectMetaLabels`: `<role>_name` and the sanitized label and
/// annotation maps with their `present` companions.
fn object_meta_labels(pairs: &mut Pairs, meta_: &ObjectMeta, role: &str) {
    push(pairs, &format!("{role}_name"), meta_.name.clone());
    for (k, v) in &meta_.labels {
        let name = sanitize_label_name(k);
        push(pairs, &format!("{role}_label_{name}"), v.clone());
        push(pairs, &format!("{role}_labelpresent_{name}"), "true");
    }
    for (k, v) in &meta_.annotations {
        let name = sanitize_label_name(k);
        push(pairs, &format!("{role}_annotation_{name}"), v.clone());
        push(pairs, &format!("{role}_annotationpresent_{name}"), "true");
    }
}

/// `podReady`: the Ready condition's status in lower case, else `unknown`.
fn pod_ready(pod: &Pod) -> String {
    pod.status
        .conditions
        .iter()
        .find(|c| c.kind == "Ready")
        .map_or("unknown".to_string(), |c| c.status.to_lowercase())
}

/// `podLabels`: the labels of a pod shared by all its targets.
fn pod_labels(pod: &Pod) -> Pairs {
    let mut pairs = Vec::new();
    push(&mut pairs, "namespace", pod.metadata.namespace.clone());
    push(&mut pairs, "pod_ip", pod.status.pod_ip.clone());
    push(&mut pairs, "pod_ready", pod_ready(pod));
    push(&mut pairs, "pod_phase", pod.status.phase.clone());
    push(&mut pairs, "pod_node_name", pod.spec.node_name.clone());
    push(&mut pairs, "pod_host_ip", pod.status.host_ip.clone());
    push(&mut pairs, "pod_uid", pod.metadata.uid.clone());
    object_meta_labels(&mut pairs, &pod.metadata, "pod");
    if let Some(owner) = pod
        .metadata
        .owner_references
        .iter()
        .find(|o| o.controller == Some(true))
    {
        push(&mut pairs, "pod_controller_kind", owner.kind.clone());
        push(&mut pairs, "pod_controller_name", owner.name.clone());
    }
    pairs
}

/// The pod's containers then init containers, with whether each is an init
/// container.
fn containers(pod: &Pod) -> impl Iterator<Item = (&Container, bool)> {
    pod.spec
        .containers
        .iter()
        .map(|c| (c, false))
        .chain(pod.spec.init_containers.iter().map(|c| (c, true)))
}

fn container_id(pod: &Pod, container: &Container, init: bool) -> String {
    let statuses = if init {
        &pod.status.init_container_statuses
    } else {
        &pod.status.container_statuses
    };
    statuses
        .iter()
        .find(|s| s.name == container.name)
        .map(|s| s.container_id.clone())
        .unwrap_or_default()
}

fn pod_group(pod: &Pod) -> TargetGroup {
    let source = format!("pod/{}", key(&pod.metadata.namespace, &pod.metadata.name));
    let mut group = TargetGroup {
        source,
        targets: Vec::new(),
        labels: finish(pod_labels(pod)),
    };
    if pod.status.pod_ip.is_empty() {
        return group;
    }
    for (container, init) in containers(pod) {
        let mut base = Vec::new();
        push(&mut base, "pod_container_name", container.name.clone());
        push(
            &mut base,
            "pod_container_id",
            container_id(pod, container, init),
        );
        push(&mut base, "pod_container_image", container.image.clone());
        push(&mut base, "pod_container_init", init.to_string());
        if container.ports.is_empty() {
            base.push((ADDRESS_LABEL.into(), pod.status.pod_ip.clone()));
            group.targets.push(finish(base));
            continue;
        }
        for port in &container.ports {
            let mut pairs = base.clone();
            let number = port.container_port.to_string();
            pairs.push((
                ADDRESS_LABEL.into(),
                join_host_port(&pod.status.pod_ip, &number),
            ));
            push(&mut pairs, "pod_container_port_number", number);
            push(&mut pairs, "pod_container_port_name", port.name.clone());
            push(
                &mut pairs,
                "pod_container_port_protocol",
                port.protocol.clone(),
            );
            group.targets.push(finish(pairs));
        }
    }
    group
}

/// `serviceLabels`: namespace, name and the label/annotation maps.
fn service_labels(service: &Service) -> Pairs {
    let mut pairs = Vec::new();
    push(&mut pairs, "namespace", service.metadata.namespace.clone());
    object_meta_labels(&mut pairs, &service.metadata, "service");
    pairs
}

fn service_group(service: &Service) -> TargetGroup {
    let m = &service.metadata;
    let mut group = TargetGroup {
        source: format!("svc/{}", key(&m.namespace, &m.name)),
        targets: Vec::new(),
        labels: finish(service_labels(service)),
    };
    for port in &service.spec.ports {
        let number = port.port.to_string();
        let host = format!("{}.{}.svc", m.name, m.namespace);
        let mut pairs = vec![(ADDRESS_LABEL.to_string(), join_host_port(&host, &number))];
        push(&mut pairs, "service_port_name", port.name.clone());
        push(&mut pairs, "service_port_number", number);
        push(&mut pairs, "service_port_protocol", port.protocol.clone());
        push(&mut pairs, "service_type", service.spec.kind.clone());
        if service.spec.kind == "ExternalName" {
            push(
                &mut pairs,
                "service_external_name",
                service.spec.external_name.clone(),
            );
        } else {
            push(
                &mut pairs,
                "service_cluster_ip",
                service.spec.cluster_ip.clone(),
            );
        }
        if service.spec.kind == "LoadBalancer" {
            if let Some(ingress) = service
                .status
                .load_balancer
                .ingress
                .iter()
                .find(|i| !i.ip.is_empty())
            {
                push(&mut pairs, "service_loadbalancer_ip", ingress.ip.clone());
            }
        }
        group.targets.push(finish(pairs));
    }
    group
}

/// The pod an endpoint address refers to, if it is a known pod.
fn referenced_pod<'a>(reference: Option<&ObjectReference>, stores: &'a Stores) -> Option<&'a Pod> {
    let reference = reference?;
    if reference.kind != "Pod" {
        return None;
    }
    stores.pods.get(&key(&reference.namespace, &reference.name))
}

/// The pods seen behind the endpoints of a group and the ports already
/// covered by an endpoint target.
#[derive(Default)]
struct SeenPods<'a> {
    pods: Vec<(&'a Pod, Vec<i32>)>,
}

impl<'a> SeenPods<'a> {
    /// Adds the pod's labels and those of the container port matching
    /// `port` to an endpoint target.
    fn attach(&mut self, pod: &'a Pod, port: i32, protocol: &str, pairs: &mut Pairs) {
        pairs.extend(pod_labels(pod));
        'containers: for (container, init) in containers(pod) {
            for cport in &container.ports {
                if cport.container_port == port {
                    push(pairs, "pod_container_name", container.name.clone());
                    push(pairs, "pod_container_image", container.image.clone());
                    push(pairs, "pod_container_port_name", cport.name.clone());
                    push(pairs, "pod_container_port_number", port.to_string());
                    push(pairs, "pod_container_port_protocol", protocol.to_string());
                    push(pairs, "pod_container_init", init.to_string());
                    break 'containers;
                }
            }
        }
        let name = (&pod.metadata.namespace, &pod.metadata.name);
        match self
            .pods
            .iter_mut()
            .find(|(p, _)| (&p.metadata.namespace, &p.metadata.name) == name)
        {
            Some((_, ports)) => ports.push(port),
            None => self.pods.push((pod, vec![port])),
        }
    }

    /// Targets for the container ports of the seen pods that no endpoint
    /// covered.
    fn uncovered_targets(&self) -> Vec<Labels> {
        let mut targets = Vec::new();
        for (pod, covered) in &self.pods {
            if pod.status.pod_ip.is_empty() {
                continue;
            }
            for (container, init) in containers(pod) {
                for cport in &container.ports {
                    if covered.contains(&cport.container_port) {
                        continue;
                    }
                    let number = cport.container_port.to_string();
                    let mut pairs = vec![(
                        ADDRESS_LABEL.to_string(),
                        join_host_port(&pod.status.pod_ip, &number),
                    )];
                    push(&mut pairs, "pod_container_name", container.name.clone());
                    push(&mut pairs, "pod_container_image", container.image.clone());
                    push(&mut pairs, "pod_container_port_name", cport.name.clone());
                    push(&mut pairs, "pod_container_port_number", number);
                    push(
                        &mut pairs,
                        "pod_container_port_protocol",
                        cport.protocol.clone(),
                    );
                    push(&mut pairs, "pod_container_init", init.to_string());
                    pairs.extend(pod_labels(pod));
                    targets.push(finish(pairs));
                }
            }
        }
        targets
    }
}

fn endpoints_group(endpoints: &Endpoints, stores: &Stores) -> TargetGroup {
    let m = &endpoints.metadata;
    let mut labels = Vec::new();
    push(&mut labels, "namespace", m.namespace.clone());
    if let Some(service) = stores.services.get(&key(&m.namespace, &m.name)) {
        labels.extend(service_labels(service));
    }
    object_meta_labels(&mut labels, m, "endpoints");
    let mut targets = Vec::new();
    let mut seen = SeenPods::default();
    for subset in &endpoints.subsets {
        for port in &subset.ports {
            let addresses = subset
                .addresses
                .iter()
                .map(|a| (a, "true"))
                .chain(subset.not_ready_addresses.iter().map(|a| (a, "false")));
            for (address, ready) in addresses {
                let mut pairs = vec![(
                    ADDRESS_LABEL.to_string(),
                    join_host_port(&address.ip, port.port),
                )];
                push(&mut pairs, "endpoint_port_name", port.name.clone());
                push(&mut pairs, "endpoint_port_protocol", port.protocol.clone());
                push(&mut pairs, "endpoint_ready", ready);
                if let Some(reference) = &address.target_ref {
                    push(
                        &mut pairs,
                        "endpoint_address_target_kind",
                        reference.kind.clone(),
                    );
                    push(
                        &mut pairs,
                        "endpoint_address_target_name",
                        reference.name.clone(),
                    );
                }
                if let Some(node) = &address.node_name {
                    push(&mut pairs, "endpoint_node_name", node.clone());
                }
                push(&mut pairs, "endpoint_hostname", address.hostname.clone());
                if let Some(pod) = referenced_pod(address.target_ref.as_ref(), stores) {
                    seen.attach(pod, port.port, &port.protocol, &mut pairs);
                }
                targets.push(finish(pairs));
            }
        }
    }
    targets.extend(seen.uncovered_targets());
    TargetGroup {
        source: format!("endpoints/{}", key(&m.namespace, &m.name)),
        targets,
        labels: finish(labels),
    }
}

fn endpoint_slice_group(slice: &EndpointSlice, stores: &Stores) -> TargetGroup {
    let m = &slice.metadata;
    let mut labels = Vec::new();
    push(&mut labels, "namespace", m.namespace.clone());
    push(
        &mut labels,
        "endpointslice_address_type",
        slice.address_type.clone(),
    );
    object_meta_labels(&mut labels, m, "endpointslice");
    if let Some(service_name) = m.labels.get("kubernetes.io/service-name") {
        if let Some(service) = stores.services.get(&key(&m.namespace, service_name)) {
            labels.extend(service_labels(service));
        }
    }
    let mut targets = Vec::new();
    let mut seen = SeenPods::default();
    for endpoint in &slice.endpoints {
        for port in &slice.ports {
            for address in &endpoint.addresses {
                let address = match port.port {
                    Some(p) => join_host_port(address, p),
                    None => address.clone(),
                };
                let mut pairs = vec![(ADDRESS_LABEL.to_string(), address)];
                let optional = [
                    ("endpointslice_port_name", port.name.clone()),
                    ("endpointslice_port_protocol", port.protocol.clone()),
                    ("endpointslice_port", port.port.map(|p| p.to_string())),
                    ("endpointslice_port_app_protocol", port.app_protocol.clone()),
                    (
                        "endpointslice_endpoint_conditions_ready",
                        endpoint.conditions.ready.map(|b| b.to_string()),
                    ),
                    (
                        "endpointslice_endpoint_conditions_serving",
                        endpoint.conditions.serving.map(|b| b.to_string()),
                    ),
                    (
                        "endpointslice_endpoint_conditions_terminating",
                        endpoint.conditions.terminating.map(|b| b.to_string()),
                    ),
                    ("endpointslice_endpoint_hostname", endpoint.hostname.clone()),
                    (
                        "endpointslice_endpoint_node_name",
                        endpoint.node_name.clone(),
                    ),
                    ("endpointslice_endpoint_zone", endpoint.zone.clone()),
                ];
                for (name, value) in optional {
                    if let Some(value) = value {
                        push(&mut pairs, name, value);
                    }
                }
                if let Some(reference) = &endpoint.target_ref {
                    push(
                        &mut pairs,
                        "endpointslice_address_target_kind",
                        reference.kind.clone(),
                    );
                    push(
                        &mut pairs,
                        "endpointslice_address_target_name",
                        reference.name.clone(),
                    );
                }
                for (k, v) in &endpoint.deprecated_topology {
                    let name = sanitize_label_name(k);
                    push(
                        &mut pairs,
                        &format!("endpointslice_endpoint_topology_{name}"),
                        v.clone(),
                    );
                    push(
                        &mut pairs,
                        &format!("endpointslice_endpoint_topology_present_{name}"),
                        "true",
                    );
                }
                if let (Some(pod), Some(number)) = (
                    referenced_pod(endpoint.target_ref.as_ref(), stores),
                    port.port,
                ) {
                    let protocol = port.protocol.clone().unwrap_or_default();
                    seen.attach(pod, number, &protocol, &mut pairs);
                }
                targets.push(finish(pairs));
            }
        }
    }
    targets.extend(seen.uncovered_targets());
    TargetGroup {
        source: format!("endpointslice/{}", key(&m.namespace, &m.name)),
        targets,
        labels: finish(labels),
    }
}

/// The node address types in Prometheus's order of preference.
const NODE_ADDRESS_PRIORITY: [&str; 6] = [
    "InternalIP",
    "InternalDNS",
    "ExternalIP",
    "ExternalDNS",
    "LegacyHostIP",
    "Hostname",
];

fn node_group(node: &Node) -> TargetGroup {
    let m = &node.metadata;
    let mut labels = Vec::new();
    object_meta_labels(&mut labels, m, "node");
    push(
        &mut labels,
        "node_provider_id",
        node.spec.provider_id.clone(),
    );
    let mut group = TargetGroup {
        source: format!("node/{}", m.name),
        targets: Vec::new(),
        labels: finish(labels),
    };
    // The first address of each type.
    let mut first: BTreeMap<&str, &str> = BTreeMap::new();
    for address in &node.status.addresses {
        first
            .entry(address.kind.as_str())
            .or_insert(address.address.as_str());
    }
    let Some(address) = NODE_ADDRESS_PRIORITY.iter().find_map(|t| first.get(t)) else {
        return group;
    };
    let port = node.status.daemon_endpoints.kubelet_endpoint.port;
    let mut pairs = vec![
        (ADDRESS_LABEL.to_string(), join_host_port(address, port)),
        ("instance".to_string(), m.name.clone()),
    ];
    for (kind, address) in &first {
        pairs.push((
            sanitize_label_name(&meta(&format!("node_address_{kind}"))),
            address.to_string(),
        ));
    }
    group.targets.push(finish(pairs));
    group
}
