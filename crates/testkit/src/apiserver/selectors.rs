//! Query parameters of a resource request, and the label and field selectors they carry.

use super::*;

/// Query parameters of a resource request.
#[derive(Default)]
pub(super) struct Params {
    pub(super) watch: bool,
    pub(super) labels: Vec<LabelRequirement>,
    pub(super) fields: Vec<FieldRequirement>,
    pub(super) limit: Option<usize>,
    pub(super) continue_token: Option<String>,
    pub(super) rv: Option<String>,
    pub(super) rv_match: Option<String>,
    pub(super) bookmarks: bool,
    pub(super) timeout_secs: Option<u64>,
    pub(super) send_initial_events: Option<bool>,
}

impl Params {
    pub(super) fn parse(query: &str) -> Result<Params, String> {
        let mut p = Params::default();
        let nonempty = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "watch" => p.watch = parse_bool(&value)?,
                "labelSelector" => p.labels = parse_label_selector(&value)?,
                "fieldSelector" => p.fields = parse_field_selector(&value)?,
                // The real server treats limit <= 0 as "no limit".
                "limit" => p.limit = parse_int(&value)?.filter(|l| *l > 0).map(|l| l as usize),
                "continue" => p.continue_token = nonempty(&value),
                "resourceVersion" => p.rv = nonempty(&value),
                "resourceVersionMatch" => p.rv_match = nonempty(&value),
                "allowWatchBookmarks" => p.bookmarks = parse_bool(&value)?,
                "timeoutSeconds" => p.timeout_secs = parse_int(&value)?.map(|t| t.max(0) as u64),
                "sendInitialEvents" => p.send_initial_events = Some(parse_bool(&value)?),
                _ => {} // pretty, timeout, ... are accepted and ignored
            }
        }
        Ok(p)
    }
}

/// Go's `strconv.ParseBool`, which the apiserver uses for query booleans.
pub(super) fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "" => Ok(false),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing \"{v}\": invalid syntax"
        )),
    }
}

pub(super) fn parse_int(v: &str) -> Result<Option<i64>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|_| format!("strconv.ParseInt: parsing \"{v}\": invalid syntax"))
}

#[derive(Clone, Debug)]
pub(super) enum LabelOp {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug)]
pub(super) struct LabelRequirement {
    pub(super) key: String,
    pub(super) op: LabelOp,
}

#[derive(Clone, Debug)]
pub(super) struct FieldRequirement {
    /// JSON pointer of the field (`/metadata/name`).
    pub(super) pointer: &'static str,
    pub(super) equal: bool,
    pub(super) value: String,
}

/// What one request selects: namespace scope plus label/field selectors.
pub(super) struct Selector {
    pub(super) namespace: Option<String>,
    pub(super) labels: Vec<LabelRequirement>,
    pub(super) fields: Vec<FieldRequirement>,
}

impl Selector {
    pub(super) fn matches(&self, obj: &Value) -> bool {
        let field = |ptr: &str| obj.pointer(ptr).and_then(Value::as_str).unwrap_or("");
        if self
            .namespace
            .as_deref()
            .is_some_and(|ns| field("/metadata/namespace") != ns)
        {
            return false;
        }
        if !self
            .fields
            .iter()
            .all(|f| (field(f.pointer) == f.value) == f.equal)
        {
            return false;
        }
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        self.labels.iter().all(|req| {
            let value = labels.and_then(|l| l.get(&req.key)).and_then(Value::as_str);
            match &req.op {
                LabelOp::In(values) => value.is_some_and(|v| values.iter().any(|x| x == v)),
                LabelOp::NotIn(values) => value.is_none_or(|v| values.iter().all(|x| x != v)),
                LabelOp::Exists => value.is_some(),
                LabelOp::DoesNotExist => value.is_none(),
            }
        })
    }
}

/// Parses `k=v,k==v,k!=v,k,!k,k in (a,b),k notin (a)`.
pub(super) fn parse_label_selector(selector: &str) -> Result<Vec<LabelRequirement>, String> {
    let mut terms = Vec::new();
    let (mut depth, mut begin) = (0i32, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&selector[begin..i]);
                begin = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[begin..]);
    if terms.iter().all(|t| t.trim().is_empty()) {
        return Ok(Vec::new());
    }
    terms
        .into_iter()
        .map(|t| parse_label_term(t.trim()))
        .collect()
}

pub(super) fn parse_label_term(term: &str) -> Result<LabelRequirement, String> {
    let err = || {
        format!("unable to parse requirement: found '{term}', expected: valid label requirement")
    };
    let key_ok = |k: &str| {
        !k.is_empty()
            && k.len() <= 316
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    };
    let value_ok = |v: &str| {
        v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    let requirement = |key: &str, op: LabelOp| {
        let values_ok = match &op {
            LabelOp::In(vs) | LabelOp::NotIn(vs) => {
                !vs.is_empty() && vs.iter().all(|v| value_ok(v))
            }
            _ => true,
        };
        if key_ok(key) && values_ok {
            Ok(LabelRequirement {
                key: key.to_owned(),
                op,
            })
        } else {
            Err(err())
        }
    };
    if let Some(key) = term.strip_prefix('!') {
        return requirement(key.trim(), LabelOp::DoesNotExist);
    }
    if let Some(open) = term.find('(') {
        let inner = term[open + 1..].strip_suffix(')').ok_or_else(err)?;
        let values: Vec<String> = inner.split(',').map(|v| v.trim().to_owned()).collect();
        let mut words = term[..open].split_whitespace();
        let (key, op) = (words.next().unwrap_or(""), words.next());
        if words.next().is_some() {
            return Err(err());
        }
        return match op {
            Some("in") => requirement(key, LabelOp::In(values)),
            Some("notin") => requirement(key, LabelOp::NotIn(values)),
            _ => Err(err()),
        };
    }
    for (symbol, negate) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = term.split_once(symbol) {
            let values = vec![value.trim().to_owned()];
            let op = if negate {
                LabelOp::NotIn(values)
            } else {
                LabelOp::In(values)
            };
            return requirement(key.trim(), op);
        }
    }
    requirement(term, LabelOp::Exists)
}

/// Parses `metadata.name=x,metadata.namespace!=y` (the fields every type supports).
pub(super) fn parse_field_selector(selector: &str) -> Result<Vec<FieldRequirement>, String> {
    let mut out = Vec::new();
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
            (f, false, v)
        } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (f, true, v)
        } else {
            return Err(format!(
                "invalid selector: '{selector}'; can't understand '{term}'"
            ));
        };
        let pointer = match field.trim() {
            "metadata.name" => "/metadata/name",
            "metadata.namespace" => "/metadata/namespace",
            other => return Err(format!("field label not supported: {other}")),
        };
        out.push(FieldRequirement {
            pointer,
            equal,
            value: value.trim().to_owned(),
        });
    }
    Ok(out)
}
