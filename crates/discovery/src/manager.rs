//! The discovery manager: runs the providers of every scrape job, keeps
//! the latest groups of each, and publishes the merged [`TargetSets`] on a
//! watch channel, at most once per update interval (5 s, as Prometheus's
//! `updatert`), except that the first result after an `apply` goes out as
//! soon as every provider has reported once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hearth_config::{ScrapeConfig, ServiceDiscoveryConfigs};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::consul::ConsulDiscovery;
use crate::dns::DnsDiscovery;
use crate::file::FileDiscovery;
use crate::http::HttpDiscovery;
use crate::kubernetes::KubernetesDiscovery;
use crate::static_config::{self, static_groups};
use crate::{GroupSender, Result, TargetGroup, TargetSets};

/// Prometheus's minimum time between two published updates.
pub const DEFAULT_UPDATE_INTERVAL: Duration = Duration::from_secs(5);

/// Runs the discovery of the applied jobs and publishes their targets.
/// Dropping it stops every provider.
pub struct Manager {
    commands: mpsc::UnboundedSender<Vec<(String, ServiceDiscoveryConfigs)>>,
    targets: watch::Receiver<Arc<TargetSets>>,
    task: JoinHandle<()>,
}

impl Manager {
    /// A manager publishing at most every 5 s. Must be called within a
    /// Tokio runtime.
    pub fn new() -> Self {
        Self::with_update_interval(DEFAULT_UPDATE_INTERVAL)
    }

    /// A manager publishing at most every `interval` (for tests).
    pub fn with_update_interval(interval: Duration) -> Self {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (publisher, targets) = watch::channel(Arc::new(TargetSets::new()));
        let task = tokio::spawn(run(command_rx, publisher, interval));
        Manager {
            commands,
            targets,
            task,
        }
    }

    /// Makes the scrape jobs the discovered ones: providers of new jobs and
    /// of jobs whose discovery configuration changed start (a changed job
    /// keeps showing its old targets until a new provider reports); jobs no
    /// longer present stop and vanish; unchanged jobs keep running.
    pub fn apply(&self, jobs: &[ScrapeConfig]) {
        self.apply_jobs(
            jobs.iter()
                .map(|j| (j.job_name.clone(), j.service_discovery.clone())),
        );
    }

    /// [`Manager::apply`] from job names and their discovery blocks.
    pub fn apply_jobs(&self, jobs: impl IntoIterator<Item = (String, ServiceDiscoveryConfigs)>) {
        // The loop only ends when the manager is dropped.
        let _ = self.commands.send(jobs.into_iter().collect());
    }

    /// The latest targets of every applied job; empty until the first
    /// publication.
    pub fn subscribe(&self) -> watch::Receiver<Arc<TargetSets>> {
        self.targets.clone()
    }
}

impl Default for Manager {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A provider ready to run.
enum Provider {
    Static(Vec<TargetGroup>),
    File(FileDiscovery),
    Dns(DnsDiscovery),
    Http(HttpDiscovery),
    Kubernetes(KubernetesDiscovery),
    Consul(ConsulDiscovery),
}

impl Provider {
    async fn run(self, updates: GroupSender) {
        match self {
            Provider::Static(groups) => static_config::run(groups, updates).await,
            Provider::File(p) => p.run(updates).await,
            Provider::Dns(p) => p.run(updates).await,
            Provider::Http(p) => p.run(updates).await,
            Provider::Kubernetes(p) => p.run(updates).await,
            Provider::Consul(p) => p.run(updates).await,
        }
    }
}

/// The providers of a job: its static configs as one provider, then one
/// per `*_sd_configs` entry.
fn providers(job: &str, configs: &ServiceDiscoveryConfigs) -> Vec<Result<Provider>> {
    let mut providers = Vec::new();
    if !configs.static_configs.is_empty() {
        providers.push(Ok(Provider::Static(static_groups(&configs.static_configs))));
    }
    for c in &configs.file_sd_configs {
        providers.push(Ok(Provider::File(FileDiscovery::new(c))));
    }
    for c in &configs.dns_sd_configs {
        providers.push(DnsDiscovery::new(c).map(Provider::Dns));
    }
    for c in &configs.http_sd_configs {
        providers.push(HttpDiscovery::new(c).map(Provider::Http));
    }
    for c in &configs.kubernetes_sd_configs {
        providers.push(KubernetesDiscovery::new(c).map(Provider::Kubernetes));
    }
    for c in &configs.consul_sd_configs {
        providers.push(ConsulDiscovery::new(c).map(Provider::Consul));
    }
    if providers.is_empty() {
        tracing::debug!(job, "no discovery configured");
    }
    providers
}

/// Groups sent by one provider of one job's generation.
struct Update {
    job: String,
    generation: u64,
    provider: usize,
    groups: Vec<TargetGroup>,
}

/// The running discovery of one job.
struct Job {
    configs: ServiceDiscoveryConfigs,
    generation: u64,
    /// Per provider: whether it has reported, and its groups by source in
    /// the order they first came.
    providers: Vec<(bool, Vec<TargetGroup>)>,
    /// The groups of the job's previous configuration, shown until a new
    /// provider reports.
    previous: Option<Vec<TargetGroup>>,
    /// Dropping the set aborts the providers.
    _tasks: JoinSet<()>,
}

impl Job {
    fn start(
        name: &str,
        configs: ServiceDiscoveryConfigs,
        generation: u64,
        updates: &mpsc::UnboundedSender<Update>,
    ) -> Job {
        let mut tasks = JoinSet::new();
        let mut states = Vec::new();
        for (index, provider) in providers(name, &configs).into_iter().enumerate() {
            let provider = match provider {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(job = name, error = %e, "cannot start discovery provider");
                    states.push((true, Vec::new()));
                    continue;
                }
            };
            states.push((false, Vec::new()));
            let (sender, mut receiver) = mpsc::unbounded_channel();
            tasks.spawn(provider.run(sender));
            let updates = updates.clone();
            let job = name.to_string();
            tasks.spawn(async move {
                while let Some(groups) = receiver.recv().await {
                    let update = Update {
                        job: job.clone(),
                        generation,
                        provider: index,
                        groups,
                    };
                    if updates.send(update).is_err() {
                        return;
                    }
                }
            });
        }
        Job {
            configs,
            generation,
            providers: states,
            previous: None,
            _tasks: tasks,
        }
    }

    /// Merges an update; whether the job's groups changed.
    fn merge(&mut self, provider: usize, groups: Vec<TargetGroup>) -> bool {
        let Some((reported, current)) = self.providers.get_mut(provider) else {
            return false;
        };
        let had_previous = self.previous.take().is_some();
        let mut changed = !*reported || had_previous;
        *reported = true;
        for group in groups {
            let position = current.iter().position(|g| g.source == group.source);
            match (position, group.targets.is_empty()) {
                (Some(i), true) => {
                    current.remove(i);
                    changed = true;
                }
                (Some(i), false) if current[i] != group => {
                    current[i] = group;
                    changed = true;
                }
                (Some(_), false) | (None, true) => {}
                (None, false) => {
                    current.push(group);
                    changed = true;
                }
            }
        }
        changed
    }

    fn groups(&self) -> Vec<TargetGroup> {
        match &self.previous {
            Some(previous) => previous.clone(),
            None => self
                .providers
                .iter()
                .flat_map(|(_, groups)| groups.iter().cloned())
                .collect(),
        }
    }

    fn all_reported(&self) -> bool {
        self.providers.iter().all(|(reported, _)| *reported)
    }
}

async fn run(
    mut commands: mpsc::UnboundedReceiver<Vec<(String, ServiceDiscoveryConfigs)>>,
    publisher: watch::Sender<Arc<TargetSets>>,
    interval: Duration,
) {
    let (update_sender, mut updates) = mpsc::unbounded_channel::<Update>();
    let mut jobs: BTreeMap<String, Job> = BTreeMap::new();
    let mut generation = 0;
    let mut dirty = false;
    // Publish as soon as every provider has reported, after an apply.
    let mut waiting_first = false;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut publish = false;
        tokio::select! {
            command = commands.recv() => {
                let Some(applied) = command else { return };
                let mut next = BTreeMap::new();
                for (name, configs) in applied {
                    match jobs.remove(&name) {
                        Some(job) if job.configs == configs => {
                            next.insert(name, job);
                        }
                        old => {
                            generation += 1;
                            let mut job = Job::start(&name, configs, generation, &update_sender);
                            job.previous = old.map(|o| o.groups());
                            next.insert(name, job);
                        }
                    }
                }
                // Jobs left in `jobs` were removed: dropping them stops them.
                jobs = next;
                dirty = true;
                waiting_first = true;
            }
            Some(update) = updates.recv() => {
                if let Some(job) = jobs.get_mut(&update.job) {
                    if job.generation == update.generation {
                        dirty |= job.merge(update.provider, update.groups);
                    }
                }
            }
            _ = ticker.tick() => publish = dirty,
        }
        if waiting_first && dirty && jobs.values().all(Job::all_reported) {
            publish = true;
        }
        if publish {
            let sets: TargetSets = jobs
                .iter()
                .map(|(name, job)| (name.clone(), job.groups()))
                .collect();
            publisher.send_replace(Arc::new(sets));
            dirty = false;
            waiting_first = false;
            ticker.reset();
        }
    }
}

#[cfg(test)]
mod tests;
