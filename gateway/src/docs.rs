//! Renders the OpenAPI document as one self-contained HTML page (`GET /docs`): no
//! scripts or assets from elsewhere, so it works offline and behind strict firewalls.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

const METHODS: [&str; 8] = [
    "get", "post", "put", "patch", "delete", "head", "options", "trace",
];

/// The reference page for an OpenAPI document.
pub fn render(spec: &Value) -> String {
    let title = text(&spec["info"]["title"]);
    let version = text(&spec["info"]["version"]);
    let mut by_tag: BTreeMap<String, Vec<(String, String, &Value)>> = BTreeMap::new();
    if let Some(paths) = spec["paths"].as_object() {
        for (path, item) in paths {
            for method in METHODS {
                if let Some(operation) = item.get(method) {
                    let tag = operation["tags"][0].as_str().unwrap_or("other").to_owned();
                    by_tag.entry(tag).or_default().push((
                        method.to_uppercase(),
                        path.clone(),
                        operation,
                    ));
                }
            }
        }
    }

    let mut html = String::with_capacity(16 * 1024);
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} {version}</title><style>{STYLE}</style></head><body><main>\
         <h1>{title} <small>{version}</small></h1>",
        title = escape(&title),
        version = escape(&version),
    );
    for paragraph in text(&spec["info"]["description"]).split("\n\n") {
        let _ = write!(html, "<p>{}</p>", inline_code(paragraph));
    }
    html.push_str("<p>Machine-readable: <a href=\"/openapi.json\"><code>/openapi.json</code></a></p><nav><ul>");
    for tag in by_tag.keys() {
        let _ = write!(html, "<li><a href=\"#tag-{0}\">{0}</a></li>", escape(tag));
    }
    html.push_str("</ul></nav>");

    let tag_descriptions: BTreeMap<String, String> = spec["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .map(|t| (text(&t["name"]), text(&t["description"])))
                .collect()
        })
        .unwrap_or_default();
    for (tag, operations) in &by_tag {
        let _ = write!(html, "<section id=\"tag-{0}\"><h2>{0}</h2>", escape(tag));
        if let Some(description) = tag_descriptions.get(tag) {
            let _ = write!(html, "<p>{}</p>", inline_code(description));
        }
        for (method, path, operation) in operations {
            render_operation(&mut html, method, path, operation);
        }
        html.push_str("</section>");
    }
    if let Some(schemas) = spec["components"]["schemas"].as_object() {
        html.push_str("<section id=\"schemas\"><h2>Schemas</h2>");
        for (name, schema) in schemas {
            let pretty = serde_json::to_string_pretty(schema).unwrap_or_default();
            let _ = write!(
                html,
                "<details id=\"schema-{0}\"><summary><code>{0}</code></summary><pre>{1}</pre></details>",
                escape(name),
                escape(&pretty)
            );
        }
        html.push_str("</section>");
    }
    html.push_str("</main></body></html>");
    html
}

fn render_operation(html: &mut String, method: &str, path: &str, operation: &Value) {
    let _ = write!(
        html,
        "<article><h3><span class=\"method {lower}\">{method}</span> <code>{path}</code></h3>",
        lower = method.to_lowercase(),
        path = escape(path)
    );
    for field in ["summary", "description"] {
        let value = text(&operation[field]);
        if !value.is_empty() {
            let _ = write!(html, "<p>{}</p>", inline_code(&value));
        }
    }
    if let Some(parameters) = operation["parameters"].as_array().filter(|p| !p.is_empty()) {
        html.push_str("<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>required</th><th>description</th></tr>");
        for parameter in parameters {
            let _ = write!(
                html,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&text(&parameter["name"])),
                escape(&text(&parameter["in"])),
                if parameter["required"].as_bool().unwrap_or(false) {
                    "yes"
                } else {
                    "no"
                },
                inline_code(&text(&parameter["description"]))
            );
        }
        html.push_str("</table>");
    }
    if let Some(content) = operation["requestBody"]["content"].as_object() {
        html.push_str("<h4>Request body</h4><ul>");
        for (media, body) in content {
            let _ = write!(
                html,
                "<li><code>{}</code> {}</li>",
                escape(media),
                schema_link(&body["schema"])
            );
        }
        html.push_str("</ul>");
    }
    if let Some(responses) = operation["responses"].as_object() {
        html.push_str(
            "<h4>Responses</h4><table><tr><th>status</th><th>description</th><th>body</th></tr>",
        );
        for (status, response) in responses {
            let body = response["content"]
                .as_object()
                .and_then(|c| c.values().next())
                .map(|media| schema_link(&media["schema"]))
                .unwrap_or_default();
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(status),
                inline_code(&text(&response["description"])),
                body
            );
        }
        html.push_str("</table>");
    }
    html.push_str("</article>");
}

fn schema_link(schema: &Value) -> String {
    let reference = schema["$ref"]
        .as_str()
        .or_else(|| schema["items"]["$ref"].as_str());
    match reference.and_then(|r| r.rsplit('/').next()) {
        Some(name) => format!("<a href=\"#schema-{0}\"><code>{0}</code></a>", escape(name)),
        None => schema["type"]
            .as_str()
            .map(|t| format!("<code>{}</code>", escape(t)))
            .unwrap_or_default(),
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// Escapes, then renders `code` spans.
fn inline_code(value: &str) -> String {
    let escaped = escape(value);
    let mut out = String::with_capacity(escaped.len());
    for (index, part) in escaped.split('`').enumerate() {
        if index % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2330;background:#fafbfc}\
main{max-width:960px;margin:0 auto;padding:24px}h1 small{color:#667;font-weight:normal;font-size:60%}\
nav ul{display:flex;flex-wrap:wrap;gap:12px;list-style:none;padding:0}\
article{background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:4px 16px;margin:12px 0}\
code{font-family:ui-monospace,monospace;background:#f0f2f5;padding:1px 4px;border-radius:3px}\
.method{display:inline-block;min-width:64px;text-align:center;color:#fff;border-radius:4px;padding:2px 6px;font-size:13px}\
.get{background:#2f80ed}.post{background:#27ae60}.put{background:#f2994a}.patch{background:#9b51e0}.delete{background:#eb5757}\
table{border-collapse:collapse;width:100%;margin-bottom:8px}td,th{border-bottom:1px solid #eee;text-align:left;padding:4px 8px;vertical-align:top}\
pre{background:#f6f8fa;padding:8px;overflow:auto}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_operations_by_tag_and_escapes_text() {
        let spec = serde_json::json!({
            "info": {"title": "T <x>", "version": "1", "description": "Uses `code`."},
            "tags": [{"name": "ops", "description": "Operations"}],
            "paths": {"/healthz": {"get": {
                "tags": ["ops"], "summary": "Is it <up>?",
                "parameters": [{"name": "q", "in": "query", "required": true}],
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}}
            }}},
            "components": {"schemas": {"Health": {"type": "object"}}}
        });
        let html = render(&spec);
        assert!(html.contains("<title>T &lt;x&gt; 1</title>"));
        assert!(html.contains("<span class=\"method get\">GET</span> <code>/healthz</code>"));
        assert!(html.contains("Is it &lt;up&gt;?"));
        assert!(html.contains("<code>code</code>"));
        assert!(html.contains("href=\"#schema-Health\""));
        assert!(html.contains("id=\"tag-ops\""));
    }
}
