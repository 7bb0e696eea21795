//! WATCH streams: replay from a resourceVersion (or the initial state), live events
//! filtered by selector, BOOKMARKs, and `410 Expired` for a compacted resourceVersion.

use super::*;

impl Shared {
    pub(super) fn watch(
        self: &Arc<Self>,
        resource: Resource,
        selector: Selector,
        p: &Params,
    ) -> Response<Body> {
        let from_rv = match p.rv.as_deref() {
            None | Some("0") => None,
            Some(rv) => match rv.parse::<u64>() {
                Ok(rv) => Some(rv),
                Err(_) => return bad_request(&format!("invalid resource version: {rv}")),
            },
        };
        let timeout_secs = p
            .timeout_secs
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_WATCH_TIMEOUT_SECS)
            .min(MAX_WATCH_TIMEOUT_SECS);
        let (out_tx, out_rx) = mpsc::channel::<Bytes>(64);
        let (events_tx, events) = mpsc::unbounded_channel();
        let mut stream = WatchStream {
            shared: self.clone(),
            resource,
            selector,
            floor: 0,
            bookmarks: p.bookmarks,
            bookmark_interval: DEFAULT_BOOKMARK_INTERVAL,
            api_version: resource.api_version().to_owned(),
            timeout: Duration::from_secs(timeout_secs),
            initial: Vec::new(),
            initial_events_end: None,
            events,
            out: out_tx,
        };
        {
            // Replay and subscribe under one lock: no gap, no duplicate.
            let mut st = lock(&self.state);
            if !st.served.is_installed(resource) {
                return not_found(); // uninstalled since the request was routed
            }
            stream.bookmark_interval = st.bookmark_interval;
            stream.api_version = st.api_version(resource);
            match from_rv {
                Some(rv) if rv < st.compacted => {
                    let msg = format!("too old resource version: {rv} ({})", st.compacted);
                    let status = status_json(410, "Expired", &msg, None);
                    let _ = stream.out.try_send(event_line("ERROR", status));
                    return stream_response(out_rx);
                }
                Some(rv) if p.send_initial_events != Some(true) => {
                    stream.floor = rv;
                    stream.initial = st.history.iter().filter_map(|e| stream.render(e)).collect();
                }
                _ => {
                    stream.floor = from_rv.unwrap_or(st.rv).max(st.rv);
                    if p.send_initial_events != Some(false) {
                        stream.initial = st.objects[resource.index()]
                            .values()
                            .filter(|o| stream.selector.matches(o))
                            .map(|o| {
                                let object =
                                    with_type_meta(resource, &stream.api_version, o.clone());
                                event_line("ADDED", object)
                            })
                            .collect();
                    }
                    if p.send_initial_events == Some(true) && p.bookmarks {
                        stream.initial_events_end = Some(stream.floor);
                    }
                }
            }
            st.watchers.push(Watcher {
                resource,
                tx: events_tx,
            });
        }
        tokio::spawn(stream.run());
        stream_response(out_rx)
    }
}

/// One open watch: turns store events into JSON lines for one client.
pub(super) struct WatchStream {
    pub(super) shared: Arc<Shared>,
    pub(super) resource: Resource,
    pub(super) selector: Selector,
    /// Only events after this RV are sent.
    pub(super) floor: u64,
    pub(super) bookmarks: bool,
    pub(super) bookmark_interval: Duration,
    /// The `apiVersion` of the objects sent (the version served when the
    /// watch started; a change of version ends the watch).
    pub(super) api_version: String,
    pub(super) timeout: Duration,
    /// Lines to send before live events (replay or initial state).
    pub(super) initial: Vec<Bytes>,
    /// For `sendInitialEvents=true`: RV of the initial-events-end bookmark.
    pub(super) initial_events_end: Option<u64>,
    pub(super) events: mpsc::UnboundedReceiver<Arc<Event>>,
    pub(super) out: mpsc::Sender<Bytes>,
}

impl WatchStream {
    pub(super) async fn run(mut self) {
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        for line in std::mem::take(&mut self.initial) {
            if self.out.send(line).await.is_err() {
                return;
            }
        }
        if let Some(rv) = self.initial_events_end
            && self.out.send(self.bookmark(rv, true)).await.is_err()
        {
            return;
        }
        let start = tokio::time::Instant::now() + self.bookmark_interval;
        let mut ticker = tokio::time::interval_at(start, self.bookmark_interval);
        loop {
            let line = tokio::select! {
                () = &mut deadline => return,
                () = self.out.closed() => return,
                event = self.events.recv() => match event {
                    Some(event) => self.render(&event),
                    None => return, // cut by the server
                },
                _ = ticker.tick(), if self.bookmarks => {
                    // Drain under the lock, so the bookmark RV covers exactly
                    // the events already sent on this stream.
                    let (pending, rv, cut) = {
                        let st = lock(&self.shared.state);
                        let mut pending = Vec::new();
                        let cut = loop {
                            match self.events.try_recv() {
                                Ok(event) => pending.push(event),
                                Err(mpsc::error::TryRecvError::Empty) => break false,
                                Err(mpsc::error::TryRecvError::Disconnected) => break true,
                            }
                        };
                        (pending, st.rv.max(self.floor), cut)
                    };
                    for line in pending.iter().filter_map(|e| self.render(e)) {
                        if self.out.send(line).await.is_err() {
                            return;
                        }
                    }
                    if cut {
                        return;
                    }
                    Some(self.bookmark(rv, false))
                }
            };
            if let Some(line) = line
                && self.out.send(line).await.is_err()
            {
                return;
            }
        }
    }

    /// The watch line for `event` as this client sees it, if any.
    pub(super) fn render(&self, event: &Event) -> Option<Bytes> {
        if event.resource != self.resource || event.rv <= self.floor {
            return None;
        }
        let now = self.selector.matches(&event.object);
        let before = event
            .prev
            .as_ref()
            .is_some_and(|p| self.selector.matches(p));
        let (kind, object) = match (event.kind, before, now) {
            (EventType::Added, _, true) => ("ADDED", event.object.clone()),
            (EventType::Deleted, _, true) => ("DELETED", event.object.clone()),
            (EventType::Modified, true, true) => ("MODIFIED", event.object.clone()),
            (EventType::Modified, false, true) => ("ADDED", event.object.clone()),
            (EventType::Modified, true, false) => {
                // The cacher sends the old content with the event's RV.
                let mut old = event.prev.clone().unwrap_or_default();
                old["metadata"]["resourceVersion"] = json!(event.rv.to_string());
                ("DELETED", old)
            }
            _ => return None,
        };
        Some(event_line(
            kind,
            with_type_meta(self.resource, &self.api_version, object),
        ))
    }

    pub(super) fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_events_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object =
            json!({"kind": self.resource.kind(), "apiVersion": self.api_version, "metadata": meta});
        event_line("BOOKMARK", object)
    }
}

pub(super) fn event_line(kind: &str, object: Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}
