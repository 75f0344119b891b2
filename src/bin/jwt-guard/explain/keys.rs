//! The keys of providers with `remote_jwks`: `--jwks PROVIDER=FILE` puts a key set in force as a
//! fetch of the provider's JWKS URL would, and notes say what is in force for the others.

use jwt_guard::authn::jwks::KeySet;
use jwt_guard::config::Config;

use crate::args::Args;
use crate::report::Failure;

/// Puts the `--jwks` keys in force ([`load_jwks`]); returns its notes, then one for each
/// provider with `remote_jwks` and no `--jwks` (which keys it has instead).
pub fn load(config: &Config, args: &Args) -> Result<Vec<String>, Failure> {
    let mut notes = load_jwks(config, args)?;
    for provider in &config.providers {
        if provider.remote.is_some()
            && !args
                .all("jwks")
                .iter()
                .any(|j| j.split_once('=').is_some_and(|(p, _)| p == provider.name))
        {
            let keys = if provider.token_rules.keys.current().is_empty() {
                "none (its tokens get 401 keys_unavailable)"
            } else {
                "its inline jwks only"
            };
            notes.push(format!(
                "provider {} has remote_jwks and no --jwks {}=FILE: keys in use: {keys}",
                provider.name, provider.name
            ));
        }
    }
    Ok(notes)
}

/// Puts the keys given with `--jwks PROVIDER=FILE` in force, as a fetch of the provider's
/// JWKS URL would (the same validation, key by key). Returns notes on skipped keys.
fn load_jwks(config: &Config, args: &Args) -> Result<Vec<String>, Failure> {
    let mut notes = Vec::new();
    for item in args.all("jwks") {
        let Some((name, file)) = item.split_once('=') else {
            return Err(args.usage(format!("--jwks {item:?}: write it as PROVIDER=FILE")));
        };
        let Some(provider) = config.providers.iter().find(|p| p.name == name) else {
            return Err(args.usage(format!("--jwks: no provider {name:?} in the configuration")));
        };
        if provider.remote.is_none() {
            return Err(args.usage(format!(
                "--jwks: provider {name:?} has no remote_jwks; its keys are the configuration's"
            )));
        }
        let body = std::fs::read(file)
            .map_err(|err| Failure::input(format!("cannot read {file}: {err}")))?;
        let (keys, skipped) = KeySet::from_fetched(&body)
            .map_err(|why| Failure::input(format!("--jwks {name}={file}: {why}")))?;
        for skip in skipped {
            notes.push(format!(
                "--jwks {name}={file}: {}: {} (skipped, as the filter skips it)",
                skip.field, skip.message
            ));
        }
        if keys.is_empty() {
            notes.push(format!(
                "--jwks {name}={file}: holds no usable key: put in force empty, as the filter does (its tokens get 401 keys_unavailable)"
            ));
        }
        provider.token_rules.keys.replace(keys);
    }
    Ok(notes)
}
