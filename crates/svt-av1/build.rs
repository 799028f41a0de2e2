//! Finds SVT-AV1 through pkg-config and generates its bindings from the installed header, so
//! the structures' layout is always the library's own (it changes between SVT-AV1 releases).

use std::path::PathBuf;

/// The oldest SVT-AV1 whose API the wrapper is written against (Debian 12 ships 1.4.1).
const MIN_VERSION: &str = "1.4";

fn main() {
    let library = match pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .probe("SvtAv1Enc")
    {
        Ok(library) => library,
        Err(e) => panic!(
            "SVT-AV1 {MIN_VERSION} or newer was not found through pkg-config ({e}). \
             Install it (Debian: apt install libsvtav1enc-dev, which scripts/setup.sh does), \
             or build Reel without the svt-av1 feature."
        ),
    };
    let mut builder = bindgen::Builder::default()
        .header_contents(
            "svt_av1_wrapper.h",
            "#include <EbSvtAv1.h>\n#include <EbSvtAv1Enc.h>\n#include <EbSvtAv1ErrorCodes.h>\n",
        )
        .allowlist_function("svt_av1_.*")
        .allowlist_type("Eb.*|SvtAv1.*")
        .allowlist_var("EB_.*|SVT_AV1_.*")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_default(true)
        .layout_tests(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for dir in &library.include_paths {
        builder = builder.clang_arg(format!("-I{}", dir.display()));
    }
    let bindings = builder
        .generate()
        .expect("bindgen could not read SVT-AV1's headers");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("svt_av1.rs"))
        .expect("writing the SVT-AV1 bindings");
}
