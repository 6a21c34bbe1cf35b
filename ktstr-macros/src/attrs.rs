//! Parsing and validating `#[ktstr_test(...)]` arguments.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprArray, ExprLit, Lit, LitInt, LitStr, Meta, Path, Token};

/// The attributes that are not check thresholds.
const OTHERS: &[&str] = &[
    "numa_nodes",
    "llcs",
    "cores",
    "threads",
    "memory_mb",
    "duration_s",
    "scheduler",
    "extra_sched_args",
    "include_files",
    "bpf_map_write",
    "expect_err",
    "expect_scx_bpf_error_contains",
    "expect_scx_bpf_error_matches",
    "auto_repro",
    "gauntlet",
    "checks",
];

/// What a threshold's value must be.
#[derive(Clone, Copy)]
pub enum Value {
    Bool,
    /// An integer above zero.
    Positive,
    /// An integer, zero allowed.
    Integer,
    /// An integer or a float.
    Number,
}

/// The check thresholds: one row per field of `ktstr::check::Checks`, in
/// its order, with what its value must be. This table is the one place the
/// macro knows them: a given threshold becomes `Some(value)` in the entry's
/// `Checks`, the rest stay `None` (the scheduler's, then the defaults,
/// decide). ktstr's `tests/attributes.rs` holds `Checks`, README's table
/// and this table to the same names.
pub const THRESHOLDS: &[(&str, Value)] = &[
    ("not_starved", Value::Bool),
    ("max_gap_ms", Value::Positive),
    ("max_spread_pct", Value::Number),
    ("min_iteration_rate", Value::Number),
    ("max_imbalance_ratio", Value::Number),
    ("max_local_dsq_depth", Value::Integer),
    ("fail_on_stall", Value::Bool),
    ("sustained_samples", Value::Positive),
    ("max_fallback_rate", Value::Number),
    ("max_keep_last_rate", Value::Number),
];

/// Every attribute, for the "accepted:" list of errors.
fn known() -> String {
    OTHERS.iter().chain(THRESHOLDS.iter().map(|(n, _)| n)).copied().collect::<Vec<_>>().join(", ")
}

/// ktstr's `topology::gauntlet` presets, by name (the expansion refers to
/// each preset's const, so a name missing there fails to compile too).
pub const PRESETS: &[&str] = &["tiny-1llc", "smt-2llc", "odd-3llc", "numa-2n", "big-32"];

pub struct TestAttrs {
    pub numa_nodes: u32,
    pub llcs: u32,
    pub cores: u32,
    pub threads: u32,
    /// `None`: `KtstrTestEntry::DEFAULT_MEMORY_MB` / `DEFAULT_DURATION_S`,
    /// the one place those defaults live.
    pub memory_mb: Option<u32>,
    pub duration_s: Option<u64>,
    pub scheduler: Option<Path>,
    pub extra_sched_args: Vec<LitStr>,
    /// Host files or directories copied into the guest under `/include`.
    pub include_files: Vec<LitStr>,
    /// The check thresholds given, as (name, value) in [`THRESHOLDS`]' order;
    /// the others defer to the scheduler's, then the defaults.
    pub thresholds: Vec<(syn::Ident, proc_macro2::TokenStream)>,
    /// Paths to `BpfMapWrite` statics, applied in order.
    pub bpf_map_write: Vec<Path>,
    /// The test pins a failure: it passes only if the run fails.
    pub expect_err: bool,
    pub expect_contains: Option<LitStr>,
    pub expect_matches: Option<LitStr>,
    /// Replay a scheduler crash in a second VM with probes (default on).
    pub auto_repro: bool,
    /// Gauntlet preset names, checked against [`PRESETS`].
    pub gauntlet: Vec<LitStr>,
    /// A const `Checks` below the thresholds given one by one (a canned
    /// scenario's gates: `checks = catalogue::RT_HOG.checks`).
    pub checks: Option<Expr>,
    /// Where the topology attributes were written, for cross-field errors.
    topo_span: Option<proc_macro2::Span>,
}

impl Default for TestAttrs {
    fn default() -> Self {
        TestAttrs {
            numa_nodes: 1,
            llcs: 1,
            cores: 2,
            threads: 1,
            memory_mb: None,
            duration_s: None,
            scheduler: None,
            extra_sched_args: Vec::new(),
            include_files: Vec::new(),
            thresholds: Vec::new(),
            bpf_map_write: Vec::new(),
            expect_err: false,
            expect_contains: None,
            expect_matches: None,
            auto_repro: true,
            gauntlet: Vec::new(),
            checks: None,
            topo_span: None,
        }
    }
}

impl Parse for TestAttrs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut a = TestAttrs::default();
        let mut seen: Vec<String> = Vec::new();
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated(input)?;
        for meta in metas {
            let Meta::NameValue(nv) = &meta else {
                return Err(syn::Error::new_spanned(
                    &meta,
                    format!("expected `name = value`; #[ktstr_test] accepts: {}", known()),
                ));
            };
            let key = nv.path.get_ident().map(|i| i.to_string()).unwrap_or_default();
            if seen.contains(&key) {
                return Err(syn::Error::new_spanned(&nv.path, format!("`{key}` is given twice")));
            }
            seen.push(key.clone());
            let v = ungroup(&nv.value);
            if ["numa_nodes", "llcs", "cores", "threads"].contains(&key.as_str()) {
                a.topo_span = Some(syn::spanned::Spanned::span(&nv));
            }
            match key.as_str() {
                "numa_nodes" => a.numa_nodes = positive(v, &key)?,
                "llcs" => a.llcs = positive(v, &key)?,
                "cores" => a.cores = positive(v, &key)?,
                "threads" => a.threads = positive(v, &key)?,
                "memory_mb" => a.memory_mb = Some(positive(v, &key)?),
                "duration_s" => a.duration_s = Some(positive::<u64>(v, &key)?),
                "scheduler" => match v {
                    Expr::Path(p) => a.scheduler = Some(p.path.clone()),
                    _ => {
                        return Err(syn::Error::new_spanned(
                            v,
                            "`scheduler` takes a path to a `Scheduler` const, e.g. `scheduler = SCX_KTSTR`",
                        ))
                    }
                },
                "extra_sched_args" => a.extra_sched_args = string_array(v)?,
                "include_files" => a.include_files = include_paths(v)?,
                "bpf_map_write" => a.bpf_map_write = paths(v, &key)?,
                "expect_err" => a.expect_err = boolean(v, &key)?,
                "auto_repro" => a.auto_repro = boolean(v, &key)?,
                "expect_scx_bpf_error_contains" => a.expect_contains = Some(pattern(v, &key, false)?),
                "expect_scx_bpf_error_matches" => a.expect_matches = Some(pattern(v, &key, true)?),
                "gauntlet" => a.gauntlet = presets(v)?,
                "checks" => match v {
                    Expr::Path(_) | Expr::Field(_) => a.checks = Some(v.clone()),
                    _ => {
                        return Err(syn::Error::new_spanned(
                            v,
                            "`checks` takes a path to a `Checks` const, e.g. `checks = catalogue::RT_HOG.checks`",
                        ))
                    }
                },
                _ => match THRESHOLDS.iter().find(|(n, _)| *n == key) {
                    Some((_, kind)) => {
                        let value = threshold(v, &key, *kind)?;
                        a.thresholds.push((syn::Ident::new(&key, syn::spanned::Spanned::span(&nv.path)), value));
                    }
                    None => {
                        return Err(syn::Error::new_spanned(
                            &nv.path,
                            format!("unknown #[ktstr_test] attribute `{key}`; accepted: {}", known()),
                        ))
                    }
                },
            }
        }
        if !a.expect_err {
            if let Some(m) = a.expect_contains.as_ref().or(a.expect_matches.as_ref()) {
                return Err(syn::Error::new(
                    m.span(),
                    "expect_scx_bpf_error_* pins a failure: it requires `expect_err = true`",
                ));
            }
        }
        let span = a.topo_span.unwrap_or_else(proc_macro2::Span::call_site);
        if a.llcs % a.numa_nodes != 0 {
            return Err(syn::Error::new(
                span,
                format!("llcs = {} cannot be split evenly over numa_nodes = {}", a.llcs, a.numa_nodes),
            ));
        }
        let cpus = a.llcs as u64 * a.cores as u64 * a.threads as u64;
        if cpus > 255 {
            return Err(syn::Error::new(
                span,
                format!("llcs * cores * threads = {cpus} vCPUs; ktstr supports at most 255"),
            ));
        }
        Ok(a)
    }
}

/// A threshold's value as the expansion writes it (integers unsuffixed, so
/// they take the type of `Checks`' field).
/// A value passed through a `macro_rules!` fragment (`$n:literal`) comes
/// wrapped in an invisible group: look through it.
fn ungroup(v: &Expr) -> &Expr {
    match v {
        Expr::Group(g) => ungroup(&g.expr),
        other => other,
    }
}

fn threshold(v: &Expr, key: &str, kind: Value) -> syn::Result<proc_macro2::TokenStream> {
    let span = syn::spanned::Spanned::span(v);
    Ok(match kind {
        Value::Bool => {
            let b = boolean(v, key)?;
            quote::quote_spanned!(span=> #b)
        }
        Value::Positive => lit_u64(positive::<u64>(v, key)?, span),
        Value::Integer => lit_u64(integer::<u64>(v, key)?, span),
        Value::Number => {
            let n = number(v, key)?;
            quote::quote_spanned!(span=> #n)
        }
    })
}

fn lit_u64(n: u64, span: proc_macro2::Span) -> proc_macro2::TokenStream {
    let mut lit = proc_macro2::Literal::u64_unsuffixed(n);
    lit.set_span(span);
    quote::quote!(#lit)
}

fn positive<T: std::str::FromStr + PartialEq + From<u8>>(v: &Expr, key: &str) -> syn::Result<T>
where
    T::Err: std::fmt::Display,
{
    let err = || syn::Error::new_spanned(v, format!("`{key}` takes a positive integer literal, e.g. `{key} = 2`"));
    let Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) = v else { return Err(err()) };
    let n: T = LitInt::base10_parse(i).map_err(|_| err())?;
    if n == T::from(0) {
        return Err(err());
    }
    Ok(n)
}

/// A non-negative integer literal (0 allowed: "none at all").
fn integer<T: std::str::FromStr>(v: &Expr, key: &str) -> syn::Result<T>
where
    T::Err: std::fmt::Display,
{
    let err = || syn::Error::new_spanned(v, format!("`{key}` takes a non-negative integer literal, e.g. `{key} = 4`"));
    let Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) = v else { return Err(err()) };
    LitInt::base10_parse(i).map_err(|_| err())
}

fn string_array(v: &Expr) -> syn::Result<Vec<LitStr>> {
    let err = || {
        syn::Error::new_spanned(
            v,
            "`extra_sched_args` takes an array of string literals, e.g. `[\"--slice-us\", \"5000\"]`",
        )
    };
    let Expr::Array(ExprArray { elems, .. }) = v else { return Err(err()) };
    elems
        .iter()
        .map(|e| match e {
            Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => Ok(s.clone()),
            _ => Err(err()),
        })
        .collect()
}

/// `include_files = ["conf", "data/x.json"]`: non-empty paths, each once.
fn include_paths(v: &Expr) -> syn::Result<Vec<LitStr>> {
    let err = |at: &dyn quote::ToTokens, what: &str| {
        syn::Error::new_spanned(
            at,
            format!("`include_files` {what}, e.g. `[\"tests/data/sched.json\", \"tests/configs\"]` (copied into the guest under /include)"),
        )
    };
    let Expr::Array(ExprArray { elems, .. }) = v else { return Err(err(v, "takes an array of path strings")) };
    let mut out: Vec<LitStr> = Vec::new();
    for e in elems {
        let Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) = e else { return Err(err(e, "takes path strings")) };
        if s.value().trim().is_empty() {
            return Err(err(e, "has an empty path"));
        }
        if out.iter().any(|o| o.value() == s.value()) {
            return Err(err(e, "names a path twice"));
        }
        out.push(s.clone());
    }
    Ok(out)
}

/// `gauntlet = ["smt-2llc", ...]`: known preset names, each once.
fn presets(v: &Expr) -> syn::Result<Vec<LitStr>> {
    let accepted = PRESETS.join(", ");
    let err = |at: &dyn quote::ToTokens, why: String| syn::Error::new_spanned(at, why);
    let Expr::Array(ExprArray { elems, .. }) = v else {
        return Err(err(
            v,
            format!("`gauntlet` takes an array of preset names, e.g. `[\"smt-2llc\"]`; presets: {accepted}"),
        ));
    };
    if elems.is_empty() {
        return Err(err(v, format!("`gauntlet` is empty: name at least one preset of {accepted}")));
    }
    let mut out: Vec<LitStr> = Vec::new();
    for e in elems {
        let Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) = e else {
            return Err(err(e, format!("a gauntlet preset is a string literal, one of {accepted}")));
        };
        let name = s.value();
        if !PRESETS.contains(&name.as_str()) {
            return Err(err(e, format!("unknown gauntlet preset {name:?}; presets: {accepted}")));
        }
        if out.iter().any(|o| o.value() == name) {
            return Err(err(e, format!("gauntlet preset {name:?} is named twice")));
        }
        out.push(s.clone());
    }
    Ok(out)
}

fn boolean(v: &Expr, key: &str) -> syn::Result<bool> {
    match v {
        Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) => Ok(b.value),
        _ => Err(syn::Error::new_spanned(v, format!("`{key}` takes `true` or `false`"))),
    }
}

/// A non-negative number, written as an integer or a float literal.
fn number(v: &Expr, key: &str) -> syn::Result<f64> {
    let err = || syn::Error::new_spanned(v, format!("`{key}` takes a non-negative number, e.g. `{key} = 25.0`"));
    let n = match v {
        Expr::Lit(ExprLit { lit: Lit::Float(f), .. }) => f.base10_parse::<f64>().map_err(|_| err())?,
        Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => i.base10_parse::<u64>().map_err(|_| err())? as f64,
        _ => return Err(err()),
    };
    if !n.is_finite() || n < 0.0 {
        return Err(err());
    }
    Ok(n)
}

/// `name = PATH` or `name = [PATH, ...]`.
fn paths(v: &Expr, key: &str) -> syn::Result<Vec<Path>> {
    let err = || {
        syn::Error::new_spanned(
            v,
            format!("`{key}` takes a `BpfMapWrite` static or an array of them, e.g. `{key} = BPF_CRASH`"),
        )
    };
    match v {
        Expr::Path(p) => Ok(vec![p.path.clone()]),
        Expr::Array(ExprArray { elems, .. }) if !elems.is_empty() => elems
            .iter()
            .map(|e| match e {
                Expr::Path(p) => Ok(p.path.clone()),
                _ => Err(err()),
            })
            .collect(),
        _ => Err(err()),
    }
}

/// A matcher: a non-empty string literal; with `regex`, a pattern that
/// compiles and does not match the empty string (it would pin nothing).
fn pattern(v: &Expr, key: &str, regex: bool) -> syn::Result<LitStr> {
    let Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) = v else {
        return Err(syn::Error::new_spanned(v, format!("`{key}` takes a string literal")));
    };
    let text = s.value();
    if text.is_empty() {
        return Err(syn::Error::new_spanned(v, format!("`{key}` is empty: it would match any error")));
    }
    if regex {
        let re = regex::Regex::new(&text)
            .map_err(|e| syn::Error::new_spanned(v, format!("`{key}` is not a valid regex: {e}")))?;
        if re.is_match("") {
            return Err(syn::Error::new_spanned(
                v,
                format!("`{key}` = {text:?} matches the empty string, so it would pin nothing"),
            ));
        }
    }
    Ok(s.clone())
}
