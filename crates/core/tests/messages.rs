//! The message files (crates/core/locales/*.ftl): both parse, both have the same ids, every
//! message formats in both languages with its arguments, and every id the code names
//! exists. The UI's side of the same files is ui/src/lib/messages.test.ts.

use fluent_bundle::FluentResource;
use kaipiao_core::i18n::{self, Arg, EN_FTL, ZH_FTL};
use kaipiao_core::{Code, Lang, Msg};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each message of an .ftl text: id and its source (first line and indented continuation
/// lines).
fn messages(ftl: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in ftl.lines() {
        let starts_message = line
            .split_once(" = ")
            .filter(|(id, _)| {
                id.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            })
            .map(|(id, _)| id.to_string());
        if let Some(id) = starts_message {
            out.push((id, line.to_string()));
        } else if line.starts_with(' ') {
            if let Some((_, text)) = out.last_mut() {
                text.push('\n');
                text.push_str(line);
            }
        }
    }
    out
}

/// The `$variables` a message's source names.
fn variables(source: &str) -> BTreeSet<String> {
    source
        .split('$')
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect()
        })
        .collect()
}

fn ids(ftl: &str) -> BTreeSet<String> {
    messages(ftl).into_iter().map(|(id, _)| id).collect()
}

#[test]
fn both_files_parse_without_errors() {
    for (name, ftl) in [("en.ftl", EN_FTL), ("zh.ftl", ZH_FTL)] {
        if let Err((_, errors)) = FluentResource::try_new(ftl.to_string()) {
            panic!("{name}: {errors:?}");
        }
        let parsed = FluentResource::try_new(ftl.to_string()).unwrap();
        // Every message the line reader sees is one Fluent sees, and no id twice.
        let listed = messages(ftl);
        assert!(parsed.entries().count() >= listed.len(), "{name}");
        let unique: BTreeSet<_> = listed.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(unique.len(), listed.len(), "{name} defines an id twice");
        for (id, _) in &listed {
            let lang = if name == "en.ftl" { Lang::En } else { Lang::Zh };
            assert!(i18n::has(lang, id), "{name}: {id} did not load");
        }
    }
    assert!(i18n::problems().is_empty(), "{:?}", i18n::problems());
}

#[test]
fn both_languages_define_the_same_ids() {
    let (en, zh) = (ids(EN_FTL), ids(ZH_FTL));
    assert!(en.len() > 100, "{} messages", en.len());
    assert_eq!(
        en.difference(&zh).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "only in en.ftl"
    );
    assert_eq!(
        zh.difference(&en).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "only in zh.ftl"
    );
}

/// Ids are the code they belong to, `<code>-<what>`, or one of the few kinds of message
/// that belong to no single code.
#[test]
fn ids_are_named_after_codes() {
    let codes: BTreeSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    let other = [
        "expect", "value", "warning", "advice", "cli", "refused", "mail",
    ];
    for id in ids(EN_FTL) {
        let base = id.split('-').next().unwrap_or_default();
        assert!(
            codes.contains(base) || other.contains(&base),
            "{id}: not a code, nor one of {other:?}"
        );
        if base == "advice" {
            let code = id.trim_start_matches("advice-");
            assert!(codes.contains(code), "{id}: advice for no code");
        }
    }
}

/// Every message formats in both languages, with no unknown id, no missing argument and no
/// Unicode isolation marks, given the arguments either language names.
#[test]
fn every_message_formats_in_both_languages() {
    let en: BTreeMap<_, _> = messages(EN_FTL).into_iter().collect();
    let zh: BTreeMap<_, _> = messages(ZH_FTL).into_iter().collect();
    for (id, en_source) in &en {
        let names: BTreeSet<String> = variables(en_source)
            .union(&variables(zh.get(id).map_or("", String::as_str)))
            .cloned()
            .collect();
        let args: Vec<(&str, Arg)> = names
            .iter()
            .map(|n| (n.as_str(), Arg::Text(format!("<{n}>"))))
            .collect();
        for lang in [Lang::En, Lang::Zh] {
            let text = i18n::tr(lang, id, &args);
            assert_ne!(&text, id, "{id} ({lang:?})");
            assert!(!text.is_empty(), "{id} ({lang:?})");
            assert!(
                !text.contains(['\u{2068}', '\u{2069}']),
                "{id} ({lang:?}): isolation marks"
            );
            if lang == Lang::Zh {
                // Chinese texts are Chinese: ideographs, or at least Chinese punctuation.
                let chinese = text.chars().any(|c| {
                    ('\u{4e00}'..='\u{9fff}').contains(&c)
                        || ('\u{3000}'..='\u{303f}').contains(&c)
                        || ('\u{ff00}'..='\u{ffef}').contains(&c)
                });
                assert!(chinese, "{id}: no Chinese in {text:?}");
            }
        }
        for n in &names {
            let everywhere = [Lang::En, Lang::Zh]
                .iter()
                .any(|&l| i18n::tr(l, id, &args).contains(&format!("<{n}>")));
            assert!(everywhere, "{id}: ${n} is printed by neither language");
        }
    }
    assert!(i18n::problems().is_empty(), "{:?}", i18n::problems());
}

/// A Chinese message with a Chinese selector argument picks the right variant.
#[test]
fn selectors_pick_by_argument() {
    let exempt = Msg::new("special_treatment-draft").arg("treatment", "exempt");
    let non_taxable = Msg::new("special_treatment-draft").arg("treatment", "non_taxable");
    assert_eq!(
        exempt.text(Lang::Zh),
        "专用发票不得开具免税项目，请开具普通发票"
    );
    assert_eq!(
        non_taxable.text(Lang::Zh),
        "专用发票不得开具不征税项目，请开具普通发票"
    );
    assert_eq!(
        exempt.text(Lang::En),
        "exempt lines are not allowed on a special invoice (专用发票); issue an ordinary invoice"
    );
    assert!(i18n::problems().is_empty(), "{:?}", i18n::problems());
}

/// An unknown id never panics: it comes back as itself and is recorded.
#[test]
fn an_unknown_id_is_caught() {
    assert_eq!(
        Msg::new("no_such-message").text(Lang::Zh),
        "no_such-message"
    );
    assert!(i18n::problems()
        .iter()
        .any(|p| p.contains("no_such-message")));
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `Msg::new("…")` in the sources of the workspace names a message of both files,
/// and no id is computed at run time (so this scan sees them all).
#[test]
fn every_id_the_code_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["crates", "src-tauri/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    let defined = ids(EN_FTL);
    let mut used = BTreeSet::new();
    for file in files {
        let path = file.to_string_lossy().replace('\\', "/");
        if path.contains("/tests/") || path.contains("/target/") || path.ends_with("i18n.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices("Msg::new(") {
            let rest = text[i + "Msg::new(".len()..].trim_start();
            let id = rest
                .strip_prefix('"')
                .and_then(|r| r.split_once('"'))
                .map(|(id, _)| id);
            let Some(id) = id else {
                panic!(
                    "{path}: Msg::new with an id that is not a literal: {}",
                    &rest[..rest.len().min(40)]
                );
            };
            assert!(defined.contains(id), "{path}: unknown message id {id:?}");
            used.insert(id.to_string());
        }
    }
    assert!(
        used.len() > 100,
        "only {} ids found in the sources",
        used.len()
    );
    // Ids nobody names: the UI's advice, and parts named only through another message.
    let unused: Vec<_> = defined
        .iter()
        .filter(|id| !used.contains(*id) && !id.starts_with("advice-"))
        .collect();
    assert!(unused.is_empty(), "defined but never used: {unused:?}");
}

/// The texts the wire and the tests rely on, through the files.
#[test]
fn field_errors_keep_their_texts_and_json() {
    let e = kaipiao_core::FieldError::msg(
        Code::TooLong,
        "remarks",
        Msg::new("too_long").arg("count", 201).arg("max", 200),
    );
    assert_eq!(
        e.message(Lang::En),
        "remarks: has 201 characters; at most 200 are allowed"
    );
    assert_eq!(e.text(Lang::Zh), "共 201 个字符，最多 200 个");
    assert_eq!(
        serde_json::to_string(&e).unwrap(),
        r#"{"code":"too_long","field":"remarks","en":"has 201 characters; at most 200 are allowed","zh":"共 201 个字符，最多 200 个"}"#
    );
    let back: kaipiao_core::FieldError =
        serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
    assert_eq!(back.text(Lang::Zh), e.text(Lang::Zh));
}
