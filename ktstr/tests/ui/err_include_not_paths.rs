use ktstr::prelude::*;

#[ktstr_test(include_files = "tests/data")]
fn not_an_array(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

#[ktstr_test(include_files = ["a", "a"])]
fn twice(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

fn main() {}
