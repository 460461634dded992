//! `op = "market"`: the J-Quants source when `JQUANTS_API_KEY` is set, else the embedded
//! synthetic market. The rule's `[params]` hold what both share (`table`), and the
//! sub-tables `[params.jquants]` and `[params.synthetic]` each source's own settings; the
//! rule becomes a rule of the chosen op, so the op (and only the chosen settings) is in the
//! key, and switching sources rebuilds from the new one. The key itself never is.

use crate::core::catalog::{OpChoice, RawParams};

pub struct MarketChoice;

impl OpChoice for MarketChoice {
    fn name(&self) -> &'static str {
        "market"
    }

    fn describe(&self) -> &'static str {
        "jquants with a key, else synthetic_market"
    }

    fn choose(&self, params: &mut RawParams) -> Result<&'static str, (usize, String)> {
        let jquants = std::env::var("JQUANTS_API_KEY").is_ok_and(|k| !k.trim().is_empty());
        let (chosen, other) = if jquants {
            ("jquants", "synthetic")
        } else {
            ("synthetic", "jquants")
        };
        params.remove(other);
        if let Some(sub) = params.remove(chosen) {
            let span = sub.span();
            match sub.into_inner() {
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        params.insert(k, toml::Spanned::new(span.clone(), v));
                    }
                }
                _ => {
                    return Err((
                        span.start,
                        format!("params.{chosen} must be a table: [params.{chosen}]"),
                    ));
                }
            }
        }
        Ok(if jquants {
            "jquants"
        } else {
            "synthetic_market"
        })
    }
}
