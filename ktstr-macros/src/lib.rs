//! `#[ktstr_test]`: turns `fn name(ctx: &Ctx) -> Result<AssertResult>` into
//! a registered ktstr test plus a `#[test]` that boots it in a VM.
//!
//! Every malformed or unknown attribute is a compile error pointing at the
//! attribute, with the accepted form in the message.

mod attrs;

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::{parse_macro_input, ItemFn};

use attrs::TestAttrs;

#[proc_macro_attribute]
pub fn ktstr_test(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attrs = parse_macro_input!(attr as TestAttrs);
    let func = parse_macro_input!(item as ItemFn);
    match expand(attrs, func) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(a: TestAttrs, mut func: ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let sig = &func.sig;
    if sig.inputs.len() != 1 || sig.asyncness.is_some() || !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            sig,
            "#[ktstr_test] functions take one argument and return a result: \
             `fn name(ctx: &Ctx) -> Result<AssertResult>`",
        ));
    }
    let name = sig.ident.clone();
    let name_str = name.to_string();
    let upper = name_str.to_uppercase();
    let body_ident = format_ident!("__ktstr_body_{}", name);
    let entry_ident = format_ident!("__KTSTR_ENTRY_{}", upper);
    let init_ident = format_ident!("__KTSTR_INIT_{}", upper);
    // Attributes such as #[ignore] belong on the generated #[test].
    let test_attrs = std::mem::take(&mut func.attrs);
    func.sig.ident = body_ident.clone();
    let vis = &func.vis;

    let TestAttrs { numa_nodes, llcs, cores, threads, scheduler, extra_sched_args, .. } = &a;
    let memory_mb = match a.memory_mb {
        Some(n) => quote!(#n),
        None => quote!(::ktstr::test_support::KtstrTestEntry::DEFAULT_MEMORY_MB),
    };
    let duration_s = match a.duration_s {
        Some(n) => quote!(#n),
        None => quote!(::ktstr::test_support::KtstrTestEntry::DEFAULT_DURATION_S),
    };
    let opt = |v: Option<proc_macro2::TokenStream>| match v {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    };
    let (threshold_names, threshold_values): (Vec<_>, Vec<_>) = a.thresholds.iter().cloned().unzip();
    let expect_err = a.expect_err;
    let auto_repro = a.auto_repro;
    let expect_contains = opt(a.expect_contains.as_ref().map(|s| quote!(#s)));
    let expect_matches = opt(a.expect_matches.as_ref().map(|s| quote!(#s)));
    let map_writes = &a.bpf_map_write;
    let include_files = &a.include_files;
    // Thresholds given one by one win over a `checks = ...` const.
    let base_checks = match &a.checks {
        Some(e) => quote!(#e),
        None => quote!(::ktstr::test_support::Checks::NONE),
    };
    // `smt-2llc` -> `::ktstr::topology::gauntlet::SMT_2LLC`.
    let presets = a.gauntlet.iter().map(|s| {
        let ident = format_ident!("{}", s.value().to_uppercase().replace('-', "_"), span = s.span());
        quote!(&::ktstr::topology::gauntlet::#ident)
    });
    let ignored = test_attrs.iter().any(|attr| attr.path().is_ident("ignore"));
    let scheduler = match scheduler {
        Some(path) => quote!(::core::option::Option::Some(&#path)),
        None => quote!(::core::option::Option::None),
    };
    Ok(quote! {
        #[allow(dead_code)]
        #func

        #[::ktstr::__private::linkme::distributed_slice(::ktstr::test_support::KTSTR_TESTS)]
        #[linkme(crate = ::ktstr::__private::linkme)]
        #[doc(hidden)]
        #vis static #entry_ident: ::ktstr::test_support::KtstrTestEntry = ::ktstr::test_support::KtstrTestEntry {
            name: #name_str,
            func: #body_ident,
            topology: ::ktstr::topology::Topology::new(#numa_nodes, #llcs, #cores, #threads),
            memory_mb: #memory_mb,
            scheduler: #scheduler,
            extra_sched_args: &[#(#extra_sched_args),*],
            include_files: &[#(#include_files),*],
            duration_s: #duration_s,
            checks: ::ktstr::test_support::Checks {
                #(#threshold_names: ::core::option::Option::Some(#threshold_values),)*
                ..::ktstr::test_support::Checks::NONE
            }
            .or(#base_checks),
            bpf_map_writes: &[#(&#map_writes),*],
            expect_err: #expect_err,
            auto_repro: #auto_repro,
            expect_scx_bpf_error: ::ktstr::check::ErrorMatchers {
                contains: #expect_contains,
                matches: #expect_matches,
            },
            ignored: #ignored,
            gauntlet: &[#(#presets),*],
            preset: ::core::option::Option::None,
        };

        // Runs before main: as PID 1 inside a ktstr guest this binary is
        // the guest runtime, and run by `cargo ktstr shell` it boots a
        // shell VM; either way it never reaches the test harness.
        #[used]
        #[unsafe(link_section = ".init_array")]
        #[doc(hidden)]
        static #init_ident: extern "C" fn() = {
            extern "C" fn init() {
                ::ktstr::__private::before_main()
            }
            init
        };

        #[test]
        #(#test_attrs)*
        fn #name() {
            ::ktstr::test_support::run_ktstr_test(&#entry_ident)
        }
    })
}
