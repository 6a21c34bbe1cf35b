use ktstr::prelude::*;

#[ktstr_test(expect_err = true, expect_scx_bpf_error_matches = "x*")]
fn t(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

fn main() {}
