//! HTTP answers: discovery documents, JSON and Status bodies, chunked watch bodies.

use super::*;

pub(super) fn is_served_group(group: &str) -> bool {
    !group.is_empty() && Resource::ALL.iter().any(|r| r.group() == group)
}

/// The named API groups, each once, in [`Resource::ALL`] order.
pub(super) fn served_groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for group in Resource::ALL.map(Resource::group) {
        if !group.is_empty() && !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups
}

/// Splits the segments of `/api/v1/...` or `/apis/<served group>/v1/...` into
/// the group ("" for core) and the segments after the version.
pub(super) fn split_group_path<'a, 'b>(segs: &'b [&'a str]) -> Option<(&'a str, &'b [&'a str])> {
    match segs {
        ["api", "v1", rest @ ..] => Some(("", rest)),
        ["apis", group, "v1", rest @ ..] if is_served_group(group) => Some((group, rest)),
        _ => None,
    }
}

/// The resource a request path addresses (collection or object), if any.
pub(super) fn resource_in_path(path: &str) -> Option<Resource> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = split_group_path(&segs)?;
    let plural = match rest {
        [plural] | ["namespaces", _, plural] | ["namespaces", _, plural, _] => plural,
        _ => return None,
    };
    Resource::from_path(group, plural)
}

pub(super) fn api_group(group: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
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

pub(super) fn with_type_meta(resource: Resource, mut obj: Value) -> Value {
    if let Some(map) = obj.as_object_mut() {
        map.insert("kind".into(), resource.kind().into());
        map.insert("apiVersion".into(), resource.api_version().into());
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

pub(super) fn not_found() -> Response<Body> {
    status_response(
        404,
        "NotFound",
        "the server could not find the requested resource",
        None,
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
