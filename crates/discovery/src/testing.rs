//! Helpers of the providers' tests: receiving updates with a deadline and
//! reading groups.

use std::time::Duration;

use hearth_model::Labels;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::TargetGroup;

/// The next update, failing the test after 5 s.
pub(crate) async fn next_update(rx: &mut UnboundedReceiver<Vec<TargetGroup>>) -> Vec<TargetGroup> {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an update within 5 s")
        .expect("the provider is running")
}

/// Asserts no update comes within `wait`.
pub(crate) async fn no_update(rx: &mut UnboundedReceiver<Vec<TargetGroup>>, wait: Duration) {
    if let Ok(Some(update)) = tokio::time::timeout(wait, rx.recv()).await {
        panic!("unexpected update {update:?}");
    }
}

/// The addresses of a group's targets.
pub(crate) fn addresses(group: &TargetGroup) -> Vec<&str> {
    group
        .targets
        .iter()
        .map(|t| t.get("__address__").unwrap_or(""))
        .collect()
}

/// Labels from string pairs.
pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied())
}
