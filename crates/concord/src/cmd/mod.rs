//! One module per subcommand.

pub mod backup;
pub mod cache;
pub mod chaos;
pub mod check;
pub mod design;
pub mod difftest;
pub mod lab;
pub mod live;
pub mod member;
pub mod restart;
pub mod serve;
pub mod shard;
pub mod sim;
pub mod tour;
pub mod up;
pub mod view;

/// `rows` as text columns, each as wide as its widest cell, two spaces apart, one line per row
/// (the tables `concord member list` and `concord shard list` print).
pub fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r.get(c).map_or(0, String::len)).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
