//! Patch application: JSON merge patch (RFC 7386), strategic merge patch (for the fields the
//! simulated API changes it behaves as a merge patch: `spec.taints` has no merge key, so the list
//! is replaced, as the real API does) and JSON patch (RFC 6902).

use serde_json::Value as Json;

/// Which patch format a request uses (from its Content-Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Strategic,
    Json,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/json-patch+json" => Some(PatchType::Json),
            _ => None,
        }
    }
}

/// Apply a patch document to `target`. Errors are messages for a 422/400 Status.
pub fn apply(kind: PatchType, target: Json, patch: &Json) -> Result<Json, String> {
    match kind {
        PatchType::Merge => Ok(merge(target, patch, false)),
        PatchType::Strategic => Ok(merge(target, patch, true)),
        PatchType::Json => json_patch(target, patch),
    }
}

fn merge(target: Json, patch: &Json, strategic: bool) -> Json {
    let Json::Object(p) = patch else {
        return patch.clone();
    };
    let mut t = match target {
        Json::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    for (k, v) in p {
        // Strategic-merge directives ($patch, $setElementOrder/..., $retainKeys) carry no data
        // for the fields the simulated API changes.
        if strategic && k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
        } else {
            let cur = t.remove(k).unwrap_or(Json::Null);
            t.insert(k.clone(), merge(cur, v, strategic));
        }
    }
    Json::Object(t)
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn pointer_parts(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("invalid JSON pointer {path:?}: must start with `/`"))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn parent_mut<'a>(doc: &'a mut Json, parts: &[String]) -> Result<&'a mut Json, String> {
    let mut cur = doc;
    for p in parts {
        cur = match cur {
            Json::Object(m) => m
                .get_mut(p)
                .ok_or_else(|| format!("path segment {p:?} does not exist"))?,
            Json::Array(a) => {
                let i: usize = p
                    .parse()
                    .map_err(|_| format!("{p:?} is not an array index"))?;
                a.get_mut(i)
                    .ok_or_else(|| format!("array index {i} is out of range"))?
            }
            _ => return Err(format!("path segment {p:?} is inside a scalar")),
        };
    }
    Ok(cur)
}

fn add(doc: &mut Json, path: &str, value: Json, replace: bool) -> Result<(), String> {
    let parts = pointer_parts(path)?;
    let Some((last, parents)) = parts.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parents)? {
        Json::Object(m) => {
            if replace && !m.contains_key(last) {
                return Err(format!("replace: {path} does not exist"));
            }
            m.insert(last.clone(), value);
        }
        Json::Array(a) => {
            if last == "-" && !replace {
                a.push(value);
            } else {
                let i: usize = last
                    .parse()
                    .map_err(|_| format!("{last:?} is not an array index"))?;
                if replace {
                    *a.get_mut(i)
                        .ok_or_else(|| format!("array index {i} is out of range"))? = value;
                } else if i <= a.len() {
                    a.insert(i, value);
                } else {
                    return Err(format!("array index {i} is out of range"));
                }
            }
        }
        _ => return Err(format!("{path}: parent is not an object or array")),
    }
    Ok(())
}

fn remove(doc: &mut Json, path: &str) -> Result<Json, String> {
    let parts = pointer_parts(path)?;
    let Some((last, parents)) = parts.split_last() else {
        return Err("cannot remove the whole document".into());
    };
    match parent_mut(doc, parents)? {
        Json::Object(m) => m
            .remove(last)
            .ok_or_else(|| format!("remove: {path} does not exist")),
        Json::Array(a) => {
            let i: usize = last
                .parse()
                .map_err(|_| format!("{last:?} is not an array index"))?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err(format!("array index {i} is out of range"))
            }
        }
        _ => Err(format!("{path}: parent is not an object or array")),
    }
}

fn json_patch(mut doc: Json, patch: &Json) -> Result<Json, String> {
    let ops = patch
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    for (i, op) in ops.iter().enumerate() {
        let name = op.get("op").and_then(Json::as_str).unwrap_or_default();
        let path = op
            .get("path")
            .and_then(Json::as_str)
            .ok_or_else(|| format!("operation {i}: missing `path`"))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| format!("operation {i} ({name}): missing `value`"))
        };
        let from = || {
            op.get("from")
                .and_then(Json::as_str)
                .ok_or_else(|| format!("operation {i} ({name}): missing `from`"))
        };
        let r = match name {
            "add" => add(&mut doc, path, value()?, false),
            "replace" => add(&mut doc, path, value()?, true),
            "remove" => remove(&mut doc, path).map(|_| ()),
            "test" => {
                let want = value()?;
                match doc.pointer(path) {
                    Some(v) if *v == want => Ok(()),
                    _ => Err(format!("test failed: {path} is not {want}")),
                }
            }
            "move" => {
                let v = remove(&mut doc, from()?)?;
                add(&mut doc, path, v, false)
            }
            "copy" => {
                let v = doc
                    .pointer(from()?)
                    .cloned()
                    .ok_or_else(|| format!("copy: {} does not exist", from().unwrap_or("")))?;
                add(&mut doc, path, v, false)
            }
            other => Err(format!(
                "unknown operation {other:?}; use add, remove, replace, move, copy or test"
            )),
        };
        r.map_err(|e| format!("json patch operation {i}: {e}"))?;
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_and_strategic_replace_lists_and_delete_nulls() {
        let t = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}], "x": 1}});
        let p = json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}], "x": null}});
        for k in [PatchType::Merge, PatchType::Strategic] {
            let out = apply(k, t.clone(), &p).unwrap();
            assert_eq!(
                out,
                json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}})
            );
        }
        let p = json!({"$setElementOrder/x": [], "spec": {"unschedulable": true}});
        let out = apply(PatchType::Strategic, t, &p).unwrap();
        assert_eq!(out["spec"]["unschedulable"], json!(true));
        assert!(out.get("$setElementOrder/x").is_none());
    }

    #[test]
    fn json_patch_ops() {
        let t = json!({"spec": {"taints": [{"key": "a"}]}});
        let p = json!([
            {"op": "test", "path": "/spec/taints/0/key", "value": "a"},
            {"op": "add", "path": "/spec/taints/-", "value": {"key": "b"}},
            {"op": "remove", "path": "/spec/taints/0"},
            {"op": "add", "path": "/spec/unschedulable", "value": true}
        ]);
        let out = apply(PatchType::Json, t.clone(), &p).unwrap();
        assert_eq!(
            out,
            json!({"spec": {"taints": [{"key": "b"}], "unschedulable": true}})
        );
        let bad = json!([{"op": "test", "path": "/spec/taints/0/key", "value": "z"}]);
        assert!(
            apply(PatchType::Json, t, &bad)
                .unwrap_err()
                .contains("test failed")
        );
    }
}
