//! Reading capture files with the real `tshark`, as a user of the captures would.
use std::{path::Path, process::Command, time::Duration};

use crate::scenario::run_command;

/// True when `tshark` runs; otherwise says loudly that `test` is skipped.
pub fn have_tshark(test: &str) -> bool {
    crate::require_tools(test, &[crate::TSHARK])
}

/// `tshark -n -r file [extra...] -T fields -E separator=| -e <field>...`: one row per packet,
/// every occurrence of a field joined with commas.
pub fn tshark_fields_with(file: &Path, extra: &[&str], fields: &[&str]) -> Vec<Vec<String>> {
    let mut command = Command::new("tshark");
    command.args(["-n", "-r"]).arg(file).args(extra).args([
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-E",
        "occurrence=a",
    ]);
    for field in fields {
        command.args(["-e", field]);
    }
    let output = run_command(command, Duration::from_secs(60));
    assert_eq!(output.code, Some(0), "tshark failed: {}", output.stderr);
    output
        .stdout
        .lines()
        .map(|line| line.split('|').map(str::to_owned).collect())
        .collect()
}

/// [`tshark_fields_with`] without extra options.
pub fn tshark_fields(file: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    tshark_fields_with(file, &[], fields)
}
