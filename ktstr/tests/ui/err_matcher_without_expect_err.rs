use ktstr::prelude::*;

#[ktstr_test(expect_scx_bpf_error_contains = "boom")]
fn t(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

fn main() {}
