//! The closing table: one line per run, the columns padded to their widest cell.

use nodeflow::learning::RunReport;

/// Bytes in a human unit (B, KB, MB, GB; powers of 1000).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The table of `runs`, header first, as lines of text.
pub fn render(runs: &[RunReport]) -> String {
    let header = [
        "algorithm",
        "nodes",
        "accuracy",
        "rounds",
        "wall s",
        "on the wire",
        "accepted",
        "processed",
        "dropped",
        "lost",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for run in runs {
        rows.push(vec![
            run.algo.clone(),
            run.nodes.to_string(),
            format!("{:.4}", run.final_accuracy),
            run.rounds.len().saturating_sub(1).to_string(),
            format!("{:.2}", run.wall_seconds),
            human_bytes(run.bytes_sent),
            run.messages.accepted.to_string(),
            run.messages.processed.to_string(),
            run.messages.dropped.to_string(),
            run.messages.lost.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, &w))| {
                if c == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
            out.push_str(&rule.join("  "));
            out.push('\n');
        }
    }
    out
}
