//! Stripe's request encoding: `application/x-www-form-urlencoded` with nested keys in
//! brackets (`invoice_settings[default_payment_method]=pm_...`, `metadata[order]=42`,
//! `payment_method_types[0]=card`), as Stripe's own libraries send it.

use std::collections::BTreeMap;

/// An ordered list of form parameters, encoded once when the request is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    pub(crate) fn new() -> Self {
        Form::default()
    }

    pub(crate) fn push(&mut self, key: impl Into<String>, value: impl ToString) -> &mut Self {
        self.pairs.push((key.into(), value.to_string()));
        self
    }

    pub(crate) fn push_opt(
        &mut self,
        key: impl Into<String>,
        value: Option<impl ToString>,
    ) -> &mut Self {
        if let Some(value) = value {
            self.push(key, value);
        }
        self
    }

    /// `name[key]=value` for each entry, in key order (deterministic: idempotent replays
    /// compare parameters).
    pub(crate) fn push_map(&mut self, name: &str, map: &BTreeMap<String, String>) -> &mut Self {
        for (key, value) in map {
            self.push(format!("{name}[{key}]"), value);
        }
        self
    }

    /// `name[0]=a&name[1]=b`.
    pub(crate) fn push_list<I, V>(&mut self, name: &str, values: I) -> &mut Self
    where
        I: IntoIterator<Item = V>,
        V: ToString,
    {
        for (index, value) in values.into_iter().enumerate() {
            self.push(format!("{name}[{index}]"), value);
        }
        self
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The encoded form: `k=v&k=v`, every byte outside `A-Za-z0-9-._*` percent-encoded
    /// and spaces as `+` (the WHATWG form encoding).
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        for (index, (key, value)) in self.pairs.iter().enumerate() {
            if index > 0 {
                out.push('&');
            }
            encode_component(key, &mut out);
            out.push('=');
            encode_component(value, &mut out);
        }
        out
    }
}

fn encode_component(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(byte))
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0x0f)]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_keys_lists_and_maps_are_bracketed_and_escaped() {
        let mut metadata = BTreeMap::new();
        metadata.insert("order".to_owned(), "inv_1 & 2".to_owned());
        metadata.insert("a".to_owned(), "é".to_owned());
        let mut form = Form::new();
        form.push("amount", 1999)
            .push_opt("description", None::<String>)
            .push("invoice_settings[default_payment_method]", "pm_1")
            .push_list("payment_method_types", ["card"])
            .push_map("metadata", &metadata);
        assert_eq!(
            form.encode(),
            "amount=1999\
             &invoice_settings%5Bdefault_payment_method%5D=pm_1\
             &payment_method_types%5B0%5D=card\
             &metadata%5Ba%5D=%C3%A9\
             &metadata%5Border%5D=inv_1+%26+2"
        );
    }

    #[test]
    fn an_empty_form_encodes_to_nothing() {
        assert!(Form::new().is_empty());
        assert_eq!(Form::new().encode(), "");
    }
}
