//! The `key=value,key=value` lists of OpenTelemetry's environment variables
//! (`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_RESOURCE_ATTRIBUTES`): entries split at commas, each
//! at its first `=`, keys and values trimmed and percent-decoded (the specification asks for
//! `,` and `=` in keys and values to be percent-encoded).
use percent_encoding::percent_decode_str;

/// The entries of `list`, in order; empty entries are skipped. An entry without `=`, with an
/// empty key, or whose value does not decode to UTF-8 is an error naming the entry's key
/// only (values may be credentials).
pub fn parse_key_values(list: &str) -> Result<Vec<(String, String)>, String> {
    let mut entries = Vec::new();
    for (index, entry) in list.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = entry.split_once('=') else {
            return Err(format!("entry {} has no '='", index + 1));
        };
        let key = percent_decode_str(key.trim())
            .decode_utf8()
            .map_err(|_| format!("the key of entry {} is not UTF-8", index + 1))?;
        if key.is_empty() {
            return Err(format!("entry {} has an empty key", index + 1));
        }
        let value = percent_decode_str(value.trim())
            .decode_utf8()
            .map_err(|_| format!("the value of {key} is not UTF-8 once percent-decoded"))?;
        entries.push((key.into_owned(), value.into_owned()));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &str) -> Vec<(String, String)> {
        parse_key_values(list).expect("parses")
    }

    #[test]
    fn entries_are_split_trimmed_and_percent_decoded() {
        assert_eq!(
            pairs(" api-key = s3cr3t%20x , deployment.environment=ci,,k=a=b,a%3Db%2Cc=v%2C"),
            [
                ("api-key".to_owned(), "s3cr3t x".to_owned()),
                ("deployment.environment".to_owned(), "ci".to_owned()),
                ("k".to_owned(), "a=b".to_owned()),
                ("a=b,c".to_owned(), "v,".to_owned()),
            ]
        );
        assert!(pairs("").is_empty());
        assert_eq!(pairs("empty="), [("empty".to_owned(), String::new())]);
    }

    #[test]
    fn a_malformed_entry_is_an_error_that_shows_no_value() {
        assert!(
            parse_key_values("a=1,secret")
                .unwrap_err()
                .contains("entry 2")
        );
        assert!(parse_key_values("=x").is_err());
        let error = parse_key_values("token=%FF%FE").unwrap_err();
        assert!(error.contains("token") && !error.contains("FF"), "{error}");
    }
}
