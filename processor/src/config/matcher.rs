//! Which entry governs an agent id. Keys are sorted into exact ids and globs,
//! and the globs ordered by specificity, once at load, so that resolving an id
//! costs a hash lookup and at most one pass of a glob set.

use std::cmp::Reverse;
use std::collections::HashMap;

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::file::{agent_path, ConfigError, Res, SloId};

/// The agent keys of a loaded file, ready to match.
#[derive(Debug, Clone, Default)]
pub(super) struct Matcher {
    exact: HashMap<String, SloId>,
    /// Glob keys, added most specific first: the lowest match index wins.
    globs: GlobSet,
    glob_ids: Vec<SloId>,
}

/// Collects agent keys one entry at a time, so a bad key is refused before
/// the entries after it are checked, as they appear in the file.
#[derive(Default)]
pub(super) struct MatcherBuilder {
    exact: HashMap<String, SloId>,
    globs: Vec<(String, Glob, SloId)>,
}

impl MatcherBuilder {
    /// Adds the key of entry `id`; an empty key or a bad glob is refused.
    pub(super) fn add(&mut self, key: &str, id: SloId) -> Res<()> {
        if key.is_empty() {
            let allowed = "a non-empty agent id or glob";
            return Err(ConfigError::invalid(agent_path(key), "\"\"", allowed));
        }
        if is_glob(key) {
            let glob = Glob::new(key).map_err(|e| {
                ConfigError::invalid(
                    agent_path(key),
                    format_args!("{key:?}"),
                    format_args!("a valid glob ({})", e.kind()),
                )
            })?;
            self.globs.push((key.to_string(), glob, id));
        } else {
            self.exact.insert(key.to_string(), id);
        }
        Ok(())
    }

    pub(super) fn build(mut self) -> Res<Matcher> {
        // Most literal characters, then longest, then smallest pattern first.
        self.globs.sort_by_cached_key(|(key, _, _)| {
            (
                Reverse(literal_chars(key)),
                Reverse(key.chars().count()),
                key.clone(),
            )
        });
        let mut builder = GlobSetBuilder::new();
        for (_, glob, _) in &self.globs {
            builder.add(glob.clone());
        }
        let set = builder.build().map_err(|e| {
            ConfigError::invalid(
                "agents".into(),
                "(the glob keys)",
                format_args!("globs that compile together ({e})"),
            )
        })?;
        Ok(Matcher {
            exact: self.exact,
            globs: set,
            glob_ids: self.globs.into_iter().map(|(_, _, id)| id).collect(),
        })
    }
}

impl Matcher {
    /// The entry of `agent_id`'s exact key, else of the most specific
    /// matching glob; `None` if no key matches.
    pub(super) fn resolve(&self, agent_id: &str) -> Option<SloId> {
        if let Some(&id) = self.exact.get(agent_id) {
            return Some(id);
        }
        if self.globs.is_empty() {
            return None;
        }
        // Ascending indices; the set was built most specific first.
        self.globs
            .matches(agent_id)
            .first()
            .map(|&i| self.glob_ids[i])
    }
}

/// Does an agent key use glob syntax (`*`, `?`, `[...]`, `{a,b}`, `\`)?
fn is_glob(key: &str) -> bool {
    key.contains(['*', '?', '[', '{', '\\'])
}

/// Characters of `pattern` that must appear literally in a match: everything
/// but `*`, `?`, classes `[...]`, and the braces and commas of `{a,b}`
/// (letters inside alternatives count, summed over the alternatives).
pub(super) fn literal_chars(pattern: &str) -> usize {
    let (mut count, mut braces) = (0, 0usize);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' => {}
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            ',' if braces > 0 => {}
            '\\' => count += usize::from(chars.next().is_some()),
            '[' => {
                // `]` right after `[`, `[!` or `[^` is a member, not the end.
                let mut first = true;
                for c in chars.by_ref() {
                    if c == ']' && !first {
                        break;
                    }
                    first = first && (c == '!' || c == '^');
                }
            }
            _ => count += 1,
        }
    }
    count
}
