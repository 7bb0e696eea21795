//! The write verbs over HTTP: create (POST), replace (PUT), JSON merge patch (PATCH)
//! and delete, with the checks of the real server's handlers, generic registry and
//! per-kind strategies, in the same order, and the same Status errors.
//!
//! Every write goes through the store of [`FakeCluster::apply`] (history, one
//! resourceVersion counter, watch events); faults and authentication were
//! handled before (see `Shared::handle`).

use serde_json::Map;

use super::*;

/// Largest request body the real server accepts (3 MiB).
const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// The real server's optimistic-lock message (`registry.OptimisticLockErrorMsg`).
const OPTIMISTIC_LOCK: &str =
    "the object has been modified; please apply your changes to the latest version and try again";
/// ConfigMap `data` + `binaryData` size limit.
const MAX_CONFIG_MAP_BYTES: usize = 1024 * 1024;

type Object = Map<String, Value>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    Create,
    Update,
    Patch,
    Delete,
}

impl Verb {
    /// The RBAC verb.
    fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
        }
    }
}

/// One field error of a 422 Invalid (`field.Error`).
struct FieldError {
    field: String,
    /// `metav1.CauseType`, e.g. `FieldValueInvalid`.
    cause: &'static str,
    /// What `field.Error.ErrorBody()` prints, e.g. `Invalid value: 0: must be greater than 0`.
    body: String,
}

impl FieldError {
    fn invalid(field: impl Into<String>, value: impl std::fmt::Display, detail: &str) -> Self {
        let body = format!("Invalid value: {value}: {detail}");
        Self::new(field, "FieldValueInvalid", body)
    }
    fn required(field: impl Into<String>, detail: &str) -> Self {
        Self::new(
            field,
            "FieldValueRequired",
            format!("Required value: {detail}"),
        )
    }
    fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self::new(field, "FieldValueForbidden", format!("Forbidden: {detail}"))
    }
    fn new(field: impl Into<String>, cause: &'static str, body: String) -> Self {
        Self {
            field: field.into(),
            cause,
            body,
        }
    }
}

/// An error answer, boxed to keep `Result`s small.
type Rejected = Box<Response<Body>>;
type Answer = Result<Response<Body>, Rejected>;

impl Shared {
    /// POST, PUT, PATCH or DELETE (authenticated already).
    pub(super) async fn write(self: &Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let segs: Vec<&str> = parts.uri.path().trim_matches('/').split('/').collect();
        let served = lock(&self.state).served.clone();
        let write_verb = |name: Option<&str>| match (&parts.method, name) {
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::PATCH, _) => "patch",
            (_, Some(_)) => "delete",
            (_, None) => "deletecollection",
        };
        let Some((group, version, rest)) = served.split_group_path(&segs) else {
            return match segs.as_slice() {
                ["version"] | ["api"] | ["apis"] => method_not_allowed(),
                ["apis", group] if served.is_served_group(group) => method_not_allowed(),
                _ => self.unserved(&segs, write_verb),
            };
        };
        let (plural, ns, name) = match rest {
            [] => return method_not_allowed(),
            rest => match resource_segments(rest) {
                Some(segments) => segments,
                None => return not_found(),
            },
        };
        let Some(resource) = served.resource_at(group, version, plural) else {
            return self.unserved(&segs, write_verb);
        };
        if !resource.scope_fits(ns, name) {
            return not_found();
        }
        let api_version = served.api_version(resource);
        // No create in the all-namespaces collection of a namespaced kind,
        // no deletecollection (not imitated), no update of a collection. A
        // cluster-scoped kind has no namespace ("" below).
        let creatable = ns.is_some() || !resource.is_namespaced();
        let (verb, name) = match (&parts.method, name) {
            (&Method::POST, None) if creatable => (Verb::Create, ""),
            (&Method::PUT, Some(name)) => (Verb::Update, name),
            (&Method::PATCH, Some(name)) => (Verb::Patch, name),
            (&Method::DELETE, Some(name)) => (Verb::Delete, name),
            _ => return method_not_allowed(),
        };
        let named = Some(name).filter(|n| !n.is_empty());
        let rbac_ns = resource.rbac_namespace(ns, named);
        if let Some(denied) = self.forbidden(resource, verb.name(), rbac_ns, named) {
            return denied;
        }
        let ns = ns.unwrap_or_default();
        let query = parts.uri.query().unwrap_or("");
        if form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == "dryRun" && !v.is_empty()) {
            return bad_request("fake apiserver: dryRun is not imitated");
        }
        let content_type = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media_type = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let wanted = match verb {
            Verb::Create | Verb::Update => Some("application/json"),
            Verb::Patch => Some("application/merge-patch+json"),
            Verb::Delete => None,
        };
        if let Some(wanted) = wanted
            && media_type != wanted
        {
            let msg = format!(
                "the body of the request was in an unknown format - accepted media types include: {wanted} \
                 (the fake apiserver imitates JSON{} only)",
                if verb == Verb::Patch {
                    " merge patch"
                } else {
                    ""
                }
            );
            return status_response(415, "UnsupportedMediaType", &msg, None);
        }
        let body = match read_body(body).await {
            Ok(body) => body,
            Err(response) => return *response,
        };
        let answer = match verb {
            Verb::Create => self.create(resource, &api_version, ns, &body),
            Verb::Update => self.replace(resource, &api_version, ns, name, &body),
            Verb::Patch => self.merge_patch(resource, &api_version, ns, name, &body),
            Verb::Delete => self.delete_object(resource, ns, name, &body),
        };
        answer.unwrap_or_else(|error| *error)
    }

    /// POST: `Store.Create`.
    fn create(&self, resource: Resource, api_version: &str, ns: &str, body: &[u8]) -> Answer {
        let mut object = decode_object(resource, api_version, body)?;
        let meta = metadata(&mut object)?;
        match meta.get("namespace").and_then(Value::as_str) {
            // `rest.BeforeCreate` clears it for a cluster-scoped kind.
            _ if !resource.is_namespaced() => {
                meta.remove("namespace");
            }
            None | Some("") => {
                meta.insert("namespace".into(), ns.into());
            }
            Some(other) if other != ns => {
                return Err(Box::new(bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                )));
            }
            Some(_) => {}
        }
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let has_rv = meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|rv| !rv.is_empty());
        prepare_for_create(resource, &mut object);
        validate(resource, &name, &object, None)?;
        if has_rv {
            // etcd3 store.Create, famously a 500.
            let msg = "resourceVersion should not be set on objects to be created";
            return Err(Box::new(status_response(500, "InternalError", msg, None)));
        }
        let mut st = self.lock_served(resource)?;
        if st.current(resource, &resource.key(ns, &name)).is_some() {
            let msg = format!("{} \"{name}\" already exists", resource.qualified());
            let details = status_details(resource, &name);
            return Err(Box::new(status_response(
                409,
                "AlreadyExists",
                &msg,
                Some(details),
            )));
        }
        let (stored, _) = st.put(resource, Value::Object(object));
        Ok(json_response(
            201,
            &with_type_meta(resource, api_version, stored),
        ))
    }

    /// The state, if `resource` is still served (it may have been
    /// uninstalled since the request was routed).
    fn lock_served(&self, resource: Resource) -> Result<MutexGuard<'_, State>, Rejected> {
        let st = lock(&self.state);
        if !st.served.is_installed(resource) {
            return Err(Box::new(not_found()));
        }
        Ok(st)
    }

    /// PUT: the update handler's name checks, then `Store.Update`.
    fn replace(
        &self,
        resource: Resource,
        api_version: &str,
        ns: &str,
        name: &str,
        body: &[u8],
    ) -> Answer {
        let mut object = decode_object(resource, api_version, body)?;
        check_name(resource, &mut object, ns, name)?;
        let mut st = self.lock_served(resource)?;
        update(&mut st, resource, ns, name, object)
    }

    /// PATCH with a JSON merge patch (RFC 7386), applied to the stored
    /// object; the result is then updated like a PUT, so a
    /// `metadata.resourceVersion` in the patch is a precondition.
    fn merge_patch(
        &self,
        resource: Resource,
        api_version: &str,
        ns: &str,
        name: &str,
        body: &[u8],
    ) -> Answer {
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| Box::new(bad_request(&format!("error decoding patch: {e}"))))?;
        // Under one lock from read to write, as the real patcher retries
        // until it applies to the latest version.
        let mut st = self.lock_served(resource)?;
        let Some(current) = st.current(resource, &resource.key(ns, name)) else {
            return Err(Box::new(object_not_found(resource, name)));
        };
        let mut patched = with_type_meta(resource, api_version, current.clone());
        apply_merge_patch(&mut patched, &patch);
        let Value::Object(mut object) = patched else {
            return Err(Box::new(bad_request(
                "the patched object is not a JSON object",
            )));
        };
        check_type_meta(resource, api_version, &mut object)?;
        check_name(resource, &mut object, ns, name)?;
        update(&mut st, resource, ns, name, object)
    }

    /// DELETE: `Store.Delete` with the preconditions of the DeleteOptions body.
    fn delete_object(&self, resource: Resource, ns: &str, name: &str, body: &[u8]) -> Answer {
        let options: Value = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(body).map_err(|e| {
                Box::new(bad_request(&format!("couldn't decode DeleteOptions: {e}")))
            })?
        };
        if options["dryRun"].as_array().is_some_and(|d| !d.is_empty()) {
            return Err(Box::new(bad_request(
                "fake apiserver: dryRun is not imitated",
            )));
        }
        let key = resource.key(ns, name);
        let mut st = self.lock_served(resource)?;
        let Some(current) = st.current(resource, &key) else {
            return Err(Box::new(object_not_found(resource, name)));
        };
        let preconditions = &options["preconditions"];
        for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
            if let Some(want) = preconditions[field].as_str() {
                let got = current["metadata"][field].as_str().unwrap_or_default();
                if want != got {
                    let why = format!(
                        "Precondition failed: {label} in precondition: {want}, {label} in object meta: {got}"
                    );
                    return Err(Box::new(conflict(resource, name, &why)));
                }
            }
        }
        take_injected_conflict(&mut st, resource, name)?;
        let last = st.remove(resource, &key).unwrap_or_default();
        if resource.returns_deleted_object() {
            let api_version = st.api_version(resource);
            return Ok(json_response(
                200,
                &with_type_meta(resource, &api_version, last),
            ));
        }
        let mut details = status_details(resource, name);
        details["uid"] = last["metadata"]["uid"].clone();
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": details,
        });
        Ok(json_response(200, &status))
    }
}

/// Reads the whole body, up to the real server's limit.
async fn read_body(body: Incoming) -> Result<Bytes, Rejected> {
    match http_body_util::Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            let msg = format!("Request entity too large: limit is {MAX_BODY_BYTES}");
            Err(Box::new(status_response(
                413,
                "RequestEntityTooLarge",
                &msg,
                None,
            )))
        }
        Err(e) => Err(Box::new(bad_request(&format!(
            "reading the request body: {e}"
        )))),
    }
}

/// The body of a POST or PUT as an object of `resource`, type meta removed.
fn decode_object(resource: Resource, api_version: &str, body: &[u8]) -> Result<Object, Rejected> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(mut object)) => {
            check_type_meta(resource, api_version, &mut object)?;
            Ok(object)
        }
        Ok(_) => Err(Box::new(bad_request(
            "couldn't get version/kind; json parse error: the body is not a JSON object",
        ))),
        Err(e) => Err(Box::new(bad_request(&format!(
            "couldn't get version/kind; json parse error: {e}"
        )))),
    }
}

/// Removes `apiVersion`/`kind`, which must be absent (the path's are used)
/// or the path's (`api_version`, as served).
fn check_type_meta(
    resource: Resource,
    api_version: &str,
    object: &mut Object,
) -> Result<(), Rejected> {
    if let Some(version) = object.remove("apiVersion")
        && version != api_version
    {
        let expected = if resource.group().is_empty() {
            format!("/{api_version}") // Go's GroupVersion.String() of the core group
        } else {
            api_version.to_owned()
        };
        let got = version.as_str().map_or(version.to_string(), str::to_owned);
        return Err(Box::new(bad_request(&format!(
            "the API version in the data ({got}) does not match the expected API version ({expected})"
        ))));
    }
    if let Some(kind) = object.remove("kind")
        && kind != resource.kind()
    {
        let got = kind.as_str().map_or(kind.to_string(), str::to_owned);
        return Err(Box::new(bad_request(&format!(
            "the object provided is unrecognized (must be of type {}): kind {got:?}",
            resource.kind()
        ))));
    }
    Ok(())
}

/// `metadata`, created empty if absent.
fn metadata(object: &mut Object) -> Result<&mut Object, Rejected> {
    object
        .entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| Box::new(bad_request("metadata must be a JSON object")))
}

/// The update handler's `checkName`; fills in an absent namespace (clears
/// it for a cluster-scoped kind, as `rest.BeforeUpdate` does).
fn check_name(
    resource: Resource,
    object: &mut Object,
    ns: &str,
    name: &str,
) -> Result<(), Rejected> {
    let meta = metadata(object)?;
    let got = meta.get("name").and_then(Value::as_str).unwrap_or_default();
    if got != name {
        return Err(Box::new(bad_request(&format!(
            "the name of the object ({got}) does not match the name on the URL ({name})"
        ))));
    }
    match meta.get("namespace").and_then(Value::as_str) {
        _ if !resource.is_namespaced() => {
            meta.remove("namespace");
        }
        None | Some("") => {
            meta.insert("namespace".into(), ns.into());
        }
        Some(got) if got != ns => {
            return Err(Box::new(bad_request(&format!(
                "the namespace of the object ({got}) does not match the namespace on the URL ({ns})"
            ))));
        }
        Some(_) => {}
    }
    Ok(())
}

/// `Store.Update` on a checked object: UID precondition, create-on-update,
/// injected conflicts, the resourceVersion check, the strategy, the write.
fn update(st: &mut State, resource: Resource, ns: &str, name: &str, mut object: Object) -> Answer {
    let current = st.current(resource, &resource.key(ns, name)).cloned();
    let meta_field = |field: &str| {
        object["metadata"][field]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let (uid, sent_rv) = (meta_field("uid"), meta_field("resourceVersion"));
    if !uid.is_empty() {
        let stored = current
            .as_ref()
            .and_then(|c| c["metadata"]["uid"].as_str())
            .unwrap_or_default();
        if uid != stored {
            let why = format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {stored}"
            );
            return Err(Box::new(conflict(resource, name, &why)));
        }
    }
    let Some(current) = current else {
        if !resource.allow_create_on_update() {
            return Err(Box::new(object_not_found(resource, name)));
        }
        // The create path of Update: no resourceVersion check at all.
        prepare_for_create(resource, &mut object);
        validate(resource, name, &object, None)?;
        let (stored, _) = st.put(resource, Value::Object(object));
        let api_version = st.api_version(resource);
        return Ok(json_response(
            201,
            &with_type_meta(resource, &api_version, stored),
        ));
    };
    take_injected_conflict(st, resource, name)?;
    if sent_rv.is_empty() {
        if !resource.allow_unconditional_update() {
            let error = FieldError::invalid(
                "metadata.resourceVersion",
                "0x0",
                "must be specified for an update",
            );
            // The registry names the resource where the kind would be.
            let kind = resource.qualified();
            return Err(Box::new(invalid(
                &kind,
                resource.group(),
                resource.plural(),
                name,
                &[error],
            )));
        }
    } else if sent_rv != current["metadata"]["resourceVersion"] {
        return Err(Box::new(conflict(resource, name, OPTIMISTIC_LOCK)));
    }
    if resource.has_status_subresource() {
        match current.get("status") {
            Some(status) => object.insert("status".into(), status.clone()),
            None => object.remove("status"),
        };
    }
    if resource == Resource::Namespaces {
        // The strategy's `PrepareForUpdate`: finalizers change only through
        // `/finalize`; and the automatic name label.
        let finalizers = current.get("spec").and_then(|s| s.get("finalizers"));
        match (
            finalizers,
            object.get_mut("spec").and_then(Value::as_object_mut),
        ) {
            (Some(finalizers), Some(spec)) => {
                spec.insert("finalizers".into(), finalizers.clone());
            }
            (Some(finalizers), None) => {
                object.insert("spec".into(), json!({"finalizers": finalizers}));
            }
            (None, Some(spec)) => {
                spec.remove("finalizers");
            }
            (None, None) => {}
        }
        if let Ok(meta) = metadata(&mut object) {
            set_namespace_name_label(meta);
        }
    }
    validate(resource, name, &object, Some(&current))?;
    let (stored, _) = st.put(resource, Value::Object(object));
    let api_version = st.api_version(resource);
    Ok(json_response(
        200,
        &with_type_meta(resource, &api_version, stored),
    ))
}

/// Consumes one of the conflicts set by [`FakeCluster::set_write_conflicts`].
fn take_injected_conflict(st: &mut State, resource: Resource, name: &str) -> Result<(), Rejected> {
    if st.write_conflicts == 0 {
        return Ok(());
    }
    st.write_conflicts -= 1;
    Err(Box::new(conflict(resource, name, OPTIMISTIC_LOCK)))
}

/// The strategies' `PrepareForCreate`: kinds with a status subresource
/// start with an empty status (custom resources with none at all; a
/// Namespace `Active`, with the `kubernetes` finalizer and its name label).
fn prepare_for_create(resource: Resource, object: &mut Object) {
    if resource.is_crd() {
        object.remove("status");
    } else if resource == Resource::Namespaces {
        object.insert("status".into(), json!({"phase": "Active"}));
        let spec = object.entry("spec").or_insert_with(|| json!({}));
        if !spec.is_object() {
            *spec = json!({});
        }
        if !spec["finalizers"].is_array() {
            spec["finalizers"] = json!([]);
        }
        if let Some(finalizers) = spec["finalizers"].as_array_mut()
            && !finalizers.iter().any(|f| f == "kubernetes")
        {
            finalizers.push(json!("kubernetes"));
        }
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            set_namespace_name_label(meta);
        }
    } else if resource.has_status_subresource() {
        object.insert("status".into(), json!({"loadBalancer": {}}));
    }
}

/// The strategies' `Validate` / `ValidateUpdate` (the parts imitated: names,
/// Lease spec numbers, ConfigMap keys, size and immutability); 422 Invalid.
fn validate(
    resource: Resource,
    name: &str,
    object: &Object,
    old: Option<&Value>,
) -> Result<(), Rejected> {
    let mut errors = Vec::new();
    if name.is_empty() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if let Some(problem) = name_problem(resource, name) {
        errors.push(FieldError::invalid(
            "metadata.name",
            format!("{name:?}"),
            &problem,
        ));
    }
    match resource {
        Resource::Leases => validate_lease(object, &mut errors),
        Resource::ConfigMaps => validate_config_map(object, old, &mut errors),
        _ => {}
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(Box::new(invalid(
        &resource.qualified_kind(),
        resource.group(),
        resource.kind(),
        name,
        &errors,
    )))
}

fn validate_lease(object: &Object, errors: &mut Vec<FieldError>) {
    let spec = object.get("spec").unwrap_or(&Value::Null);
    if let Some(duration) = spec.get("leaseDurationSeconds").and_then(Value::as_i64)
        && duration <= 0
    {
        let field = "spec.leaseDurationSeconds";
        errors.push(FieldError::invalid(
            field,
            duration,
            "must be greater than 0",
        ));
    }
    if let Some(transitions) = spec.get("leaseTransitions").and_then(Value::as_i64)
        && transitions < 0
    {
        let field = "spec.leaseTransitions";
        let detail = "must be greater than or equal to 0";
        errors.push(FieldError::invalid(field, transitions, detail));
    }
}

fn validate_config_map(object: &Object, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    let empty = Map::new();
    let data = object
        .get("data")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let binary = object
        .get("binaryData")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut size = 0;
    for (field, map) in [("data", data), ("binaryData", binary)] {
        for (key, value) in map {
            size += value.as_str().map_or(0, str::len);
            let path = format!("{field}[{key}]");
            if !is_config_map_key(key) {
                let detail = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' \
                     (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
                errors.push(FieldError::invalid(&path, format!("{key:?}"), detail));
            }
            if field == "data" && binary.contains_key(key) {
                let detail = "duplicate of key present in binaryData";
                errors.push(FieldError::invalid(&path, format!("{key:?}"), detail));
            }
        }
    }
    if size > MAX_CONFIG_MAP_BYTES {
        let body = format!("Too long: must have at most {MAX_CONFIG_MAP_BYTES} bytes");
        errors.push(FieldError::new("", "FieldValueTooLong", body));
    }
    if let Some(old) = old
        && old["immutable"] == true
    {
        let detail = "field is immutable when `immutable` is set";
        if object.get("immutable") != Some(&Value::Bool(true)) {
            errors.push(FieldError::forbidden("immutable", detail));
        }
        for field in ["data", "binaryData"] {
            let now = object.get(field).filter(|v| !is_empty_map(v));
            let before = old.get(field).filter(|v| !is_empty_map(v));
            if now != before {
                errors.push(FieldError::forbidden(field, detail));
            }
        }
    }
}

fn is_empty_map(value: &Value) -> bool {
    value.is_null() || value.as_object().is_some_and(Map::is_empty)
}

/// `validation.IsConfigMapKey`.
fn is_config_map_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && !key.starts_with("..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

/// Why `name` is not a valid object name of `resource`, if it is not: a
/// DNS-1035 label for Services, a DNS-1123 label for Namespaces, a DNS-1123
/// subdomain for the others.
fn name_problem(resource: Resource, name: &str) -> Option<String> {
    let label_ok = |label: &str, first_alpha: bool| {
        let bytes = label.as_bytes();
        let inner_ok = bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        let first_ok = bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || (!first_alpha && b.is_ascii_digit()));
        let last_ok = bytes
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        inner_ok && first_ok && last_ok
    };
    if resource == Resource::Services {
        if name.len() > 63 {
            return Some("must be no more than 63 characters".into());
        }
        if !label_ok(name, true) {
            return Some(
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an \
                 alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', \
                 regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                    .into(),
            );
        }
        return None;
    }
    if resource == Resource::Namespaces {
        if name.len() > 63 {
            return Some("must be no more than 63 characters".into());
        }
        if !label_ok(name, false) {
            return Some(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and \
                 must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex \
                 used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                    .into(),
            );
        }
        return None;
    }
    if name.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    if !name.split('.').all(|label| label_ok(label, false)) {
        return Some(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
             and must start and end with an alphanumeric character (e.g. 'example.com', regex used for \
             validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .into(),
        );
    }
    None
}

/// `apierrors.NewInvalid`: 422 with one cause per field error.
fn invalid(
    qualified_kind: &str,
    group: &str,
    kind: &str,
    name: &str,
    errors: &[FieldError],
) -> Response<Body> {
    let rendered: Vec<String> = errors
        .iter()
        .map(|e| {
            if e.field.is_empty() {
                e.body.clone()
            } else {
                format!("{}: {}", e.field, e.body)
            }
        })
        .collect();
    let aggregate = match rendered.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    let msg = format!("{qualified_kind} {name:?} is invalid: {aggregate}");
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| json!({"reason": e.cause, "message": e.body, "field": e.field}))
        .collect();
    let mut details = json!({"name": name, "kind": kind, "causes": causes});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    status_response(422, "Invalid", &msg, Some(details))
}

/// RFC 7386 JSON merge patch.
fn apply_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            apply_merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}
