//! Reload on SIGHUP and when a watched file changes (the config, the zone file, the GeoIP
//! database, the kubeconfigs). A reload that fails keeps the old state serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::App;
use super::loaded::{LoadError, LoadedConfig};

impl App {
    /// Starts the reloader (for a config file; the embedded demo never reloads).
    pub(super) fn spawn_reloader(self: &Arc<Self>) -> Option<JoinHandle<()>> {
        self.path.as_ref()?;
        // Stamped now, not when the task first runs, so that no change is missed.
        let seen = file_stamps(&self.watched_files());
        Some(tokio::spawn(reload_loop(self.clone(), seen)))
    }

    /// serving and returns why.
    pub fn reload(&self) -> Result<(), LoadError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let _turn = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let result = LoadedConfig::from_file(path).and_then(|mut new| {
            if let Some(d) = &self.dnstap_flag {
                new.config.dnstap = Some(d.clone());
            }
            // Check that a snapshot builds before anything is switched.
            new.snapshot(&self.store, &self.health, self.fleet.as_deref())?;
            // A new tap, if dnstap's settings changed, started before anything is
            // switched too.
            let old = self.loaded.load().dnstap_settings();
            let settings = new.dnstap_settings();
            let tap = if settings == old {
                None
            } else {
                let endpoint = settings.as_ref().map(|s| s.endpoint.to_string());
                Some((
                    endpoint,
                    super::start_tap(&self.metrics, settings).map_err(LoadError::Dnstap)?,
                ))
            };
            Ok((new, tap))
        });
        match result {
            Ok((new, tap)) => {
                let old = self.loaded.load();
                if old.config.listen.dns != new.config.listen.dns
                    || old.config.listen.admin != new.config.listen.admin
                    || old.config.rrl != new.config.rrl
                    || old.config.state_file != new.config.state_file
                {
                    warn!(
                        "listen addresses, rrl or state_file changed; they take effect at the next restart"
                    );
                }
                if let Some(f) = &self.fleet {
                    f.set_own(
                        &new.config_digest,
                        &new.geoip_digest,
                        new.config.health.quorum(true),
                    );
                }
                if let Some((endpoint, tap)) = tap {
                    match endpoint {
                        Some(e) => info!(collector = %e, "dnstap: to this collector from now on"),
                        None => info!("dnstap: off"),
                    }
                    // Each worker takes it as its next batch begins (or as it idles); the
                    // old tap's writer sends what it has, then ends, once none holds it.
                    self.dnstap.set(tap);
                }
                self.metrics.set_dnssec_keys(&new.dnssec_key_labels());
                self.sync_sources(&new);
                self.loaded.store(Arc::new(new));
                self.store.rebuild_all();
                self.metrics.reload(true);
                info!(path = %path.display(), "reloaded");
                Ok(())
            }
            Err(e) => {
                self.metrics.reload(false);
                error!("reload failed, still serving the previous config: {e}");
                Err(e)
            }
        }
    }

    fn watched_files(&self) -> Vec<PathBuf> {
        let loaded = self.loaded.load();
        let mut files: Vec<PathBuf> = self.path.iter().cloned().collect();
        files.extend(loaded.config.zone_file.clone());
        files.extend(loaded.config.geoip.as_ref().map(|g| g.database.clone()));
        files.extend(loaded.clusters.iter().filter_map(|a| a.kubeconfig_path()));
        if let Some(d) = &loaded.config.dnssec {
            for k in &d.keys {
                let private = k.value.file();
                let public = private.to_string_lossy().replace(".private", ".key");
                files.push(private.to_owned());
                files.push(PathBuf::from(public));
            }
        }
        files
    }

    /// The key timing (Publish, Activate, Inactive, Delete) that has passed since the keys
    /// were loaded, if any: a reload then puts the keys in their new states.
    fn key_event_due(&self) -> Option<i64> {
        let loaded = self.loaded.load();
        let next = loaded.dnssec.as_ref().and_then(|z| z.next_event());
        next.filter(|at| *at <= crate::civil::unix_now())
    }
}

/// How often the watched files are checked for changes.
const RELOAD_POLL: Duration = Duration::from_secs(1);

/// Reloads on SIGHUP and when a watched file changes. Files are polled (size, mtime,
/// inode), which also catches a GeoIP database replaced by rename as geoipupdate does.
async fn reload_loop(app: Arc<App>, mut seen: Vec<Stamp>) {
    // The key timing a reload was last tried for: a failed one is not retried every poll.
    let mut tried_event = None;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let by_signal = tokio::select! {
            _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending::<()>().await } } => true,
            _ = tokio::time::sleep(RELOAD_POLL) => false,
        };
        let now = file_stamps(&app.watched_files());
        let due = app.key_event_due();
        let keys_due = due.is_some() && due != tried_event;
        if by_signal || now != seen || keys_due {
            tried_event = due;
            info!(signal = by_signal, key_timing = keys_due, "reloading");
            // Reading tens of MB of GeoIP data is blocking work: keep it off the runtime's
            // worker threads (the query path runs there).
            let s = app.clone();
            let _ = tokio::task::spawn_blocking(move || s.reload()).await;
            // Re-stat after the reload, so a failed reload is not retried until the
            // files change again.
            seen = file_stamps(&app.watched_files());
        }
    }
}

type Stamp = Option<(u64, SystemTime, u64)>;

fn file_stamps(files: &[PathBuf]) -> Vec<Stamp> {
    use std::os::unix::fs::MetadataExt;
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(f).ok()?;
            Some((m.len(), m.modified().ok()?, m.ino()))
        })
        .collect()
}
