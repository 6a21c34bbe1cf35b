use ktstr::prelude::*;

#[ktstr_test(bpf_map_write = "crash")]
fn t(_ctx: &Ctx) -> Result<AssertResult> {
    Ok(AssertResult::pass())
}

fn main() {}
