//! `pdcctl slug`: what pdc would name a unit, and which names of a list collide.

use std::process::ExitCode;

use pdc_core::slug::{SlugRule, SlugStyle, slug_all};
use serde::Serialize;

use crate::output::{Listing, Row};
use crate::{Cli, CliError, exit};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Unit names in Vietnamese, e.g. "Xã Cư M’gar".
    names: Vec<String>,
    /// Read names from a tenant list (YAML with `departments` and `communes`), e.g. deploy/samples/daklak-tenants.yaml.
    #[arg(long)]
    file: Option<String>,
    /// Run words together (`soyte`) instead of joining them with hyphens (`so-y-te`).
    #[arg(long)]
    compact: bool,
    /// Drop the unit-type word that starts a name (Xã, Phường, Sở).
    #[arg(long)]
    drop_prefix: bool,
    /// The province domain, to show each unit's subdomain.
    #[arg(long, default_value = "daklak.gov.vn")]
    domain: String,
}

#[derive(Serialize)]
struct Suggestion {
    name: String,
    slug: String,
    subdomain: String,
    truncated: bool,
    collides_with: Vec<String>,
}

/// Names of a tenant list file: its departments and its communes.
pub fn names_from_file(path: &str) -> Result<Vec<String>, CliError> {
    #[derive(serde::Deserialize)]
    struct List {
        #[serde(default)]
        departments: Vec<String>,
        #[serde(default)]
        communes: Vec<Unit>,
    }
    #[derive(serde::Deserialize)]
    struct Unit {
        name: String,
    }
    let text = std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("reading {path}: {e}")))?;
    let list: List = serde_yaml::from_str(&text).map_err(|e| CliError::Usage(format!("{path} is not a tenant list: {e}")))?;
    Ok(list.departments.into_iter().chain(list.communes.into_iter().map(|c| c.name)).collect())
}

pub fn run(cli: &Cli, args: &Args) -> Result<ExitCode, CliError> {
    let mut names = args.names.clone();
    if let Some(f) = &args.file {
        names.extend(names_from_file(f)?);
    }
    if names.is_empty() {
        return Err(CliError::Usage("give one or more names, or --file with a tenant list".into()));
    }
    let rule = SlugRule { style: if args.compact { SlugStyle::Compact } else { SlugStyle::Hyphenated }, drop_unit_prefix: args.drop_prefix };
    let report = slug_all(names.iter().map(String::as_str), rule);
    let rows: Vec<Suggestion> = names
        .iter()
        .filter_map(|n| {
            let s = report.slugs.get(n)?;
            let collides_with = report
                .collisions
                .iter()
                .find(|c| c.label == s.label)
                .map(|c| c.names.iter().filter(|o| *o != n).cloned().collect())
                .unwrap_or_default();
            Some(Suggestion { name: n.clone(), slug: s.label.clone(), subdomain: format!("{}.{}", s.label, args.domain), truncated: s.truncated, collides_with })
        })
        .collect();
    let body = rows.iter().map(|r| {
        let note = match (r.truncated, r.collides_with.is_empty()) {
            (true, _) => "cut to 63 characters".to_string(),
            (false, false) => format!("collides with {}", r.collides_with.join(", ")),
            _ => String::new(),
        };
        Row::new(vec![r.name.clone(), r.slug.clone(), r.subdomain.clone(), note])
    });
    cli.output().list(&Listing::values(&["NAME", "SLUG", "SUBDOMAIN", "NOTE"]).rows(body), &rows)?;
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    if !report.collisions.is_empty() {
        eprintln!("{} slug(s) shared by more than one name: give those units a slug by hand (pdcctl department create --name)", report.collisions.len());
    }
    Ok(exit::unless(report.errors.is_empty() && report.collisions.is_empty(), exit::FAILED))
}
