//! `static_configs`: the job's fixed target groups, and the conversion of
//! a `<static_config>` (also the format of file and HTTP discovery) into a
//! [`TargetGroup`].

use hearth_config::discovery::StaticConfig;
use hearth_model::Labels;

use crate::{GroupSender, TargetGroup, ADDRESS_LABEL};

/// The groups of a job's `static_configs`: group `i` has source `"i"`, as
/// Prometheus's `StaticConfig` provider gives them.
pub fn static_groups(configs: &[StaticConfig]) -> Vec<TargetGroup> {
    configs
        .iter()
        .enumerate()
        .map(|(i, config)| group_from_static(config, i.to_string(), None))
        .collect()
}

/// Sends the static groups once and returns.
pub(crate) async fn run(groups: Vec<TargetGroup>, updates: GroupSender) {
    let _ = updates.send(groups);
}

/// One group of a static config: a target `{__address__: t}` per target,
/// the config's labels plus an optional meta label as group labels.
pub(crate) fn group_from_static(
    config: &StaticConfig,
    source: String,
    meta: Option<(&str, &str)>,
) -> TargetGroup {
    let targets = config
        .targets
        .iter()
        .map(|t| Labels::new([(ADDRESS_LABEL, t.as_str())]))
        .collect();
    let labels = config
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(meta);
    TargetGroup {
        source,
        targets,
        labels: Labels::new(labels),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_group_per_config_with_index_source() {
        let configs = vec![
            StaticConfig {
                targets: vec!["a:1".into(), "b:2".into()],
                labels: [("env".to_string(), "prod".to_string())].into(),
            },
            StaticConfig {
                targets: vec!["c:3".into()],
                labels: Default::default(),
            },
        ];
        let groups = static_groups(&configs);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].source, "0");
        assert_eq!(groups[1].source, "1");
        assert_eq!(
            groups[0].targets,
            vec![
                Labels::new([("__address__", "a:1")]),
                Labels::new([("__address__", "b:2")])
            ]
        );
        assert_eq!(groups[0].labels, Labels::new([("env", "prod")]));
        assert!(groups[1].labels.is_empty());
    }
}
