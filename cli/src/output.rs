//! Tables for people (`-o wide` adds the extra columns, `--no-headers` drops the
//! header line), `-o name` for pipes, JSON and YAML for scripts. Every list command
//! hands its rows to [`Output::list`]; every command showing one object, to
//! [`Output::object`].

use comfy_table::{ContentArrangement, Table, presets};
use kube::Resource;
use serde::Serialize;

use crate::CliError;

const NOT_OBJECTS: &str = "-o name prints API objects as kind.group/name, and this command prints none: use -o json or -o yaml";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Columns for people (the default).
    Table,
    /// The table with its extra columns.
    Wide,
    /// Each object as kind.group/name, one a line, as kubectl prints them.
    Name,
    Json,
    Yaml,
    /// Comma-separated values (`ip export`, `zone rules`, `report`).
    Csv,
    /// An nftables ruleset (`zone rules` only).
    Nftables,
}

impl Format {
    /// Table or wide: a layout for people rather than data for scripts.
    pub fn for_people(self) -> bool {
        matches!(self, Format::Table | Format::Wide)
    }
}

/// What the global `-o` and `--no-headers` ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Output {
    pub format: Format,
    pub headers: bool,
}

impl Output {
    /// Print a list: as a table (wide, with or without headers), as names, or as
    /// `data` in JSON or YAML.
    pub fn list<T: Serialize>(self, listing: &Listing, data: &T) -> Result<(), CliError> {
        match self.format {
            Format::Table | Format::Wide | Format::Name => {
                let text = self.render(listing)?;
                if !text.is_empty() {
                    out(text);
                }
                Ok(())
            }
            f => print_data(f, data),
        }
    }

    /// A list as text for the table, wide and name outputs; empty when there is
    /// nothing to print (no rows and no headers).
    pub fn render(self, listing: &Listing) -> Result<String, CliError> {
        match self.format {
            Format::Name if listing.objects => Ok(listing.rows.iter().filter_map(|r| r.object.clone()).collect::<Vec<_>>().join("\n")),
            Format::Name => Err(CliError::Flag(NOT_OBJECTS.into())),
            Format::Wide => {
                let headers: Vec<&str> = listing.headers.iter().chain(&listing.wide_headers).copied().collect();
                let rows = listing.rows.iter().map(|r| r.cells.iter().chain(&r.wide).cloned().collect()).collect();
                Ok(render_table(self.headers.then_some(&headers[..]), rows))
            }
            _ => Ok(render_table(self.headers.then_some(&listing.headers[..]), listing.rows.iter().map(|r| r.cells.clone()).collect())),
        }
    }

    /// Print one object as `kind.group/name`, JSON or YAML and say true; say false for
    /// table and wide, which the caller prints its own way.
    pub fn object<K>(self, obj: &K) -> Result<bool, CliError>
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        match self.format {
            Format::Table | Format::Wide => Ok(false),
            Format::Name => {
                out(object_name::<K>(obj.meta().name.as_deref().unwrap_or_default()));
                Ok(true)
            }
            f => print_data(f, obj).map(|()| true),
        }
    }
}

/// The rows of one list, with the columns only `-o wide` shows.
#[derive(Debug, Default)]
pub struct Listing {
    headers: Vec<&'static str>,
    wide_headers: Vec<&'static str>,
    /// Whether the rows are API objects, which `-o name` prints.
    objects: bool,
    rows: Vec<Row>,
}

impl Listing {
    /// A list of API objects: each row made with [`Row::object`].
    pub fn objects(headers: &[&'static str]) -> Self {
        Listing { headers: headers.to_vec(), objects: true, ..Default::default() }
    }

    /// A list of things that are not API objects (plans, usage, slugs): `-o name`
    /// is refused.
    pub fn values(headers: &[&'static str]) -> Self {
        Listing { headers: headers.to_vec(), ..Default::default() }
    }

    /// The columns `-o wide` adds after the others.
    pub fn wide(mut self, headers: &[&'static str]) -> Self {
        self.wide_headers = headers.to_vec();
        self
    }

    pub fn rows(mut self, rows: impl IntoIterator<Item = Row>) -> Self {
        self.rows.extend(rows);
        self
    }
}

/// One row: its cells, the cells `-o wide` adds, and the object it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    object: Option<String>,
    cells: Vec<String>,
    wide: Vec<String>,
}

impl Row {
    /// A row that is no API object.
    pub fn new(cells: Vec<String>) -> Self {
        Row { object: None, cells, wide: Vec::new() }
    }

    /// A row showing the object `K` named `name`.
    pub fn object<K: Resource<DynamicType = ()>>(name: &str, cells: Vec<String>) -> Self {
        Row { object: Some(object_name::<K>(name)), cells, wide: Vec::new() }
    }

    /// The cells of the `-o wide` columns.
    pub fn wide(mut self, cells: Vec<String>) -> Self {
        self.wide = cells;
        self
    }
}

/// `kind.group/name` as kubectl prints it (`tenantvm.pdc.io/web-1`); `kind/name` for
/// the core group.
pub fn object_name<K: Resource<DynamicType = ()>>(name: &str) -> String {
    let kind = K::kind(&()).to_ascii_lowercase();
    match K::group(&()).as_ref() {
        "" => format!("{kind}/{name}"),
        group => format!("{kind}.{group}/{name}"),
    }
}

/// Print a line to stdout. A closed pipe (`pdcctl ... | head`) ends the process
/// quietly, as other command-line tools do.
pub fn out(line: impl std::fmt::Display) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if writeln!(o, "{line}").is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) {
        std::process::exit(0);
    }
}

/// `println!` through [`out`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::out(format!($($arg)*)) };
}

/// A kubectl-style table: no borders, upper-case headers. For the sections of a
/// `show`; lists go through [`Output::list`].
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    render_table(Some(headers), rows)
}

/// The table, with a header line when `headers` are given; empty when there is
/// neither a header nor a row.
fn render_table(headers: Option<&[&str]>, rows: Vec<Vec<String>>) -> String {
    if headers.is_none() && rows.is_empty() {
        return String::new();
    }
    let mut t = Table::new();
    t.load_preset(presets::NOTHING).set_content_arrangement(ContentArrangement::Disabled);
    if let Some(h) = headers {
        t.set_header(h.to_vec());
    }
    for r in rows {
        t.add_row(r);
    }
    // comfy-table pads the first column with one space; kubectl does not.
    t.to_string().lines().map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end()).collect::<Vec<_>>().join("\n")
}

/// Print `value` as JSON or YAML.
pub fn print_data<T: Serialize>(format: Format, value: &T) -> Result<(), CliError> {
    match format {
        Format::Json => out(serde_json::to_string_pretty(value).map_err(|e| CliError::Format(e.to_string()))?),
        Format::Yaml | Format::Table | Format::Wide => out(serde_yaml::to_string(value).map_err(|e| CliError::Format(e.to_string()))?.trim_end()),
        Format::Name => return Err(CliError::Flag(NOT_OBJECTS.into())),
        Format::Csv | Format::Nftables => {
            return Err(CliError::Flag("-o csv is offered by `ip export`, `zone rules` and `report`, -o nftables by `zone rules`; use -o json or -o yaml here".into()));
        }
    }
    Ok(())
}

/// How long ago `t` was, the way kubectl prints ages (`45s`, `12m`, `3h`, `5d`).
pub fn age(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> String {
    let Some(t) = t else { return "-".into() };
    let secs = k8s_openapi::jiff::Timestamp::now().duration_since(t.0).as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Namespace;
    use pdc_api::{Department, SizeClass, TenantVM};

    fn output(format: Format, headers: bool) -> Output {
        Output { format, headers }
    }

    fn vms() -> Listing {
        Listing::objects(&["DEPARTMENT", "NAME", "SIZE"]).wide(&["ZONES"]).rows([
            Row::object::<TenantVM>("web-1", vec!["so-y-te".into(), "web-1".into(), "m1.small".into()]).wide(vec!["app".into()]),
            Row::object::<TenantVM>("db", vec!["so-y-te".into(), "db".into(), "m1.large".into()]).wide(vec!["app,data".into()]),
        ])
    }

    #[test]
    fn table_is_kubectl_like() {
        let t = table(&["NAME", "CODE"], vec![vec!["so-y-te".into(), "H15.23".into()]]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("NAME"), "{t}");
        assert!(lines[1].starts_with("so-y-te"), "{t}");
    }

    #[test]
    fn object_names_are_kind_dot_group_slash_name_and_kind_slash_name_in_the_core_group() {
        assert_eq!(object_name::<TenantVM>("web-1"), "tenantvm.pdc.io/web-1");
        assert_eq!(object_name::<Department>("so-y-te"), "department.pdc.io/so-y-te");
        assert_eq!(object_name::<Namespace>("so-y-te"), "namespace/so-y-te");
    }

    #[test]
    fn name_output_is_one_object_a_line_whatever_the_headers() {
        for headers in [true, false] {
            assert_eq!(output(Format::Name, headers).render(&vms()).unwrap(), "tenantvm.pdc.io/web-1\ntenantvm.pdc.io/db");
        }
        assert_eq!(output(Format::Name, true).render(&Listing::objects(&["NAME"])).unwrap(), "");
    }

    #[test]
    fn name_output_of_rows_that_are_no_objects_is_a_usage_error() {
        let slugs = Listing::values(&["NAME", "SLUG"]).rows([Row::new(vec!["Sở Y tế".into(), "so-y-te".into()])]);
        assert!(matches!(output(Format::Name, true).render(&slugs), Err(CliError::Flag(m)) if m.contains("-o json")));
    }

    #[test]
    fn no_headers_drops_the_header_line_and_nothing_else() {
        let with = output(Format::Table, true).render(&vms()).unwrap();
        let without = output(Format::Table, false).render(&vms()).unwrap();
        assert_eq!(with.lines().count(), 3, "{with}");
        let rows: Vec<Vec<&str>> = without.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(rows, vec![vec!["so-y-te", "web-1", "m1.small"], vec!["so-y-te", "db", "m1.large"]], "{without}");
        assert!(!without.contains("NAME"), "{without}");
    }

    #[test]
    fn an_empty_list_without_headers_prints_nothing_and_with_headers_the_header() {
        let empty = Listing::objects(&["DEPARTMENT", "NAME"]);
        assert_eq!(output(Format::Table, false).render(&empty).unwrap(), "");
        assert_eq!(output(Format::Wide, false).render(&empty).unwrap(), "");
        assert_eq!(output(Format::Table, true).render(&empty).unwrap(), "DEPARTMENT  NAME");
    }

    #[test]
    fn wide_adds_the_extra_columns_after_the_others_and_is_the_table_when_there_are_none() {
        let wide = output(Format::Wide, true).render(&vms()).unwrap();
        let lines: Vec<Vec<&str>> = wide.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines[0], ["DEPARTMENT", "NAME", "SIZE", "ZONES"]);
        assert_eq!(lines[2], ["so-y-te", "db", "m1.large", "app,data"]);
        let bare = output(Format::Wide, false).render(&vms()).unwrap();
        assert_eq!(bare.lines().count(), 2, "{bare}");
        let sizes = || Listing::objects(&["NAME", "VCPU"]).rows([Row::object::<SizeClass>("m1.small", vec!["m1.small".into(), "2".into()])]);
        assert_eq!(output(Format::Wide, true).render(&sizes()).unwrap(), output(Format::Table, true).render(&sizes()).unwrap());
    }

    #[test]
    fn csv_and_name_for_a_single_value_are_usage_errors() {
        assert!(matches!(print_data(Format::Csv, &1), Err(CliError::Flag(_))));
        assert!(matches!(print_data(Format::Name, &1), Err(CliError::Flag(_))));
    }
}
