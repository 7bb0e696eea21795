//! HTTP answers: discovery documents, JSON and Status bodies, chunked watch bodies.

use super::*;

/// What is served: the version of each resource, `None` for a CRD that is not
/// installed. Kept in the [`State`]; requests route on a copy.
#[derive(Clone, Debug)]
pub(super) struct Served([Option<String>; Resource::COUNT]);

impl Served {
    /// The built-in kinds at their version, no CRD.
    pub(super) fn initial() -> Self {
        Self(std::array::from_fn(|i| {
            let resource = Resource::ALL[i];
            (!resource.is_crd()).then(|| resource.default_version().to_owned())
        }))
    }

    /// Serves `resource` at `version`; returns the version served before.
    pub(super) fn install(&mut self, resource: Resource, version: &str) -> Option<String> {
        self.0[resource.index()].replace(version.to_owned())
    }

    /// Stops serving `resource`; returns the version served before.
    pub(super) fn uninstall(&mut self, resource: Resource) -> Option<String> {
        self.0[resource.index()].take()
    }

    pub(super) fn version(&self, resource: Resource) -> Option<&str> {
        self.0[resource.index()].as_deref()
    }

    pub(super) fn is_installed(&self, resource: Resource) -> bool {
        self.version(resource).is_some()
    }

    /// The `apiVersion` of `resource` as served (its default when not served).
    pub(super) fn api_version(&self, resource: Resource) -> String {
        match (resource.group(), self.version(resource)) {
            (_, None) => resource.api_version().to_owned(),
            ("", Some(version)) => version.to_owned(),
            (group, Some(version)) => format!("{group}/{version}"),
        }
    }

    /// Whether `group` is a named group with at least one served resource.
    pub(super) fn is_served_group(&self, group: &str) -> bool {
        !group.is_empty() && !self.group_versions(group).is_empty()
    }

    /// The named API groups with a served resource, each once, in
    /// [`Resource::ALL`] order.
    pub(super) fn groups(&self) -> Vec<&'static str> {
        let mut groups: Vec<&'static str> = Vec::new();
        for resource in Resource::ALL {
            let group = resource.group();
            if !group.is_empty() && self.is_installed(resource) && !groups.contains(&group) {
                groups.push(group);
            }
        }
        groups
    }

    /// The versions `group` serves, preferred first (the real server's
    /// order: GA, then beta, then alpha, newer first).
    pub(super) fn group_versions(&self, group: &str) -> Vec<&str> {
        let mut versions: Vec<&str> = Vec::new();
        for resource in Resource::ALL.into_iter().filter(|r| r.group() == group) {
            if let Some(version) = self.version(resource)
                && !versions.contains(&version)
            {
                versions.push(version);
            }
        }
        versions.sort_by(|a, b| {
            version_priority(b)
                .cmp(&version_priority(a))
                .then_with(|| a.cmp(b))
        });
        versions
    }

    /// Splits the segments of `/api/v1/...` or `/apis/<group>/<version>/...`
    /// where that group serves that version into the group ("" for core),
    /// the version and the segments after it.
    pub(super) fn split_group_path<'a, 'b>(
        &self,
        segs: &'b [&'a str],
    ) -> Option<(&'a str, &'a str, &'b [&'a str])> {
        let (group, version, rest) = parse_api_path(segs)?;
        (group.is_empty() || self.group_versions(group).contains(&version))
            .then_some((group, version, rest))
    }

    /// The resource served at `group`/`version` named `plural`.
    pub(super) fn resource_at(&self, group: &str, version: &str, plural: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| {
            r.group() == group && r.plural() == plural && self.version(*r) == Some(version)
        })
    }

    /// The resource a write to `path` (collection or object) counts for: a
    /// served one, or a CRD's at any version, installed or not.
    pub(super) fn written_resource(&self, path: &str) -> Option<Resource> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = parse_api_path(&segs)?;
        let (plural, ns, name) = resource_segments(rest)?;
        self.split_group_path(&segs)
            .and_then(|_| self.resource_at(group, version, plural))
            .or_else(|| Resource::crd_named(group, plural))
            .filter(|resource| resource.scope_fits(ns, name))
    }

    /// The APIGroup document of `group` (without kind/apiVersion, as in
    /// an APIGroupList).
    pub(super) fn api_group(&self, group: &str) -> Value {
        let versions: Vec<Value> = self
            .group_versions(group)
            .into_iter()
            .map(
                |version| json!({"groupVersion": format!("{group}/{version}"), "version": version}),
            )
            .collect();
        let preferred = versions.first().cloned().unwrap_or_default();
        json!({"name": group, "versions": versions, "preferredVersion": preferred})
    }
}

/// Sort key of a Kubernetes version (`v1` > `v1beta2` > `v1beta1` >
/// `v1alpha1`; others last): bigger is preferred.
fn version_priority(version: &str) -> (u8, u8, u64, u64) {
    let Some(rest) = version.strip_prefix('v') else {
        return (0, 0, 0, 0);
    };
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let Ok(major) = rest[..digits].parse::<u64>() else {
        return (0, 0, 0, 0);
    };
    let (tier, minor) = match &rest[digits..] {
        "" => return (1, 2, major, 0),
        tail => match (tail.strip_prefix("beta"), tail.strip_prefix("alpha")) {
            (Some(minor), _) => (1, minor),
            (_, Some(minor)) => (0, minor),
            _ => return (0, 0, 0, 0),
        },
    };
    match minor.parse::<u64>() {
        Ok(minor) => (1, tier, major, minor),
        Err(_) => (0, 0, 0, 0),
    }
}

/// Splits `/api/v1/...` or `/apis/<group>/<version>/...` into group ("" for
/// core), version and the segments after it, whatever is served.
pub(super) fn parse_api_path<'a, 'b>(
    segs: &'b [&'a str],
) -> Option<(&'a str, &'a str, &'b [&'a str])> {
    match segs {
        ["api", "v1", rest @ ..] => Some(("", "v1", rest)),
        ["apis", group, version, rest @ ..] if !group.is_empty() && !version.is_empty() => {
            Some((group, version, rest))
        }
        _ => None,
    }
}

/// The plural, namespace and name of the segments after the version, when
/// they address a collection or an object, in a namespace or not (whether
/// that fits the resource's scope is [`Resource::scope_fits`]). Note that
/// `namespaces/{name}` is the Namespace object `name`, and
/// `namespaces/{ns}/{plural}` the collection `plural` in namespace `ns`.
pub(super) fn resource_segments<'a>(
    rest: &[&'a str],
) -> Option<(&'a str, Option<&'a str>, Option<&'a str>)> {
    match rest {
        [plural] => Some((plural, None, None)),
        [plural, name] => Some((plural, None, Some(name))),
        ["namespaces", ns, plural] => Some((plural, Some(ns), None)),
        ["namespaces", ns, plural, name] => Some((plural, Some(ns), Some(name))),
        _ => None,
    }
}

/// The RBAC verb of a read: `get` of a name, else `watch` or `list`.
pub(super) fn read_verb(name: Option<&str>, query: &str) -> &'static str {
    if name.is_some() {
        "get"
    } else if Params::parse(query).is_ok_and(|p| p.watch) {
        "watch"
    } else {
        "list"
    }
}

pub(super) fn version_info() -> Value {
    json!({
        "major": "1", "minor": "33", "emulationMajor": "1", "emulationMinor": "33",
        "minCompatibilityMajor": "1", "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.0", "gitCommit": "60a317eadfcb839692a5813d9f61cee54a5aeb97",
        "gitTreeState": "clean", "buildDate": "2025-04-23T13:00:00Z", "goVersion": "go1.24.2",
        "compiler": "gc", "platform": "linux/amd64",
    })
}

/// `obj` with the `kind` of `resource` and `api_version` (as served, see
/// [`State::api_version`]).
pub(super) fn with_type_meta(resource: Resource, api_version: &str, mut obj: Value) -> Value {
    if let Some(map) = obj.as_object_mut() {
        map.insert("kind".into(), resource.kind().into());
        map.insert("apiVersion".into(), api_version.into());
    }
    obj
}

pub(super) fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

pub(super) fn status_json(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    if let Some(details) = details {
        status["details"] = details;
    }
    status
}

pub(super) fn status_response(
    code: u16,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> Response<Body> {
    json_response(code, &status_json(code, reason, message, details))
}

pub(super) fn bad_request(message: &str) -> Response<Body> {
    status_response(400, "BadRequest", message, None)
}

/// `404 NotFound` for a path that names nothing served (an unknown group,
/// version or resource, such as a CRD that is not installed).
pub(super) fn not_found() -> Response<Body> {
    status_response(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

pub(super) fn method_not_allowed() -> Response<Body> {
    let msg = "the server does not allow this method on the requested resource";
    status_response(405, "MethodNotAllowed", msg, None)
}

/// `StatusDetails` naming an object (the real server puts the resource, not
/// the kind, in `kind`; empty fields are omitted).
pub(super) fn status_details(resource: Resource, name: &str) -> Value {
    let mut details = json!({"kind": resource.plural()});
    if !name.is_empty() {
        details["name"] = json!(name);
    }
    if !resource.group().is_empty() {
        details["group"] = json!(resource.group());
    }
    details
}

/// `404 NotFound` for an absent object.
pub(super) fn object_not_found(resource: Resource, name: &str) -> Response<Body> {
    let msg = format!("{} \"{name}\" not found", resource.qualified());
    status_response(404, "NotFound", &msg, Some(status_details(resource, name)))
}

/// `409 Conflict` for a failed optimistic-concurrency or precondition check.
pub(super) fn conflict(resource: Resource, name: &str, why: &str) -> Response<Body> {
    let msg = format!(
        "Operation cannot be fulfilled on {} \"{name}\": {why}",
        resource.qualified()
    );
    status_response(409, "Conflict", &msg, Some(status_details(resource, name)))
}

pub(super) fn json_response(code: u16, body: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A `200` whose body is the lines sent on `rx`, chunked (no length), ending
/// when the sender is dropped.
pub(super) fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let mut response = Response::new(ChannelBody(rx).boxed());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(super) struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|line| line.map(|b| Ok(Frame::data(b))))
    }
}
