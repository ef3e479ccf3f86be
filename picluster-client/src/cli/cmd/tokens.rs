//! `picluster token`: make, list and withdraw join tokens.

use super::with_client;
use crate::cli::args::TokenCommand;
use crate::cli::output::{emit, ChangedView, TokenCreatedView, TokensView};
use crate::cli::CliError;
use picluster_core::identity::Role;
use std::io::Write;
use std::process::ExitCode;

/// Connects with `--bundle` if given, else the cluster directory's admin credential,
/// runs `f`, and closes.
pub(super) fn token(command: TokenCommand, out: &mut dyn Write) -> Result<ExitCode, CliError> {
    match command {
        TokenCommand::Create {
            ttl,
            uses,
            role,
            replace,
            cluster,
            output,
        } => with_client(&cluster, |client| async move {
            let role = if role == "client" {
                Role::Client
            } else {
                Role::Worker
            };
            let (token, info) = client.create_token(role, ttl, uses, replace).await?;
            emit(
                out,
                &TokenCreatedView::new(token.to_string(), &info),
                output.json,
            )?;
            Ok(ExitCode::SUCCESS)
        }),
        TokenCommand::List { cluster, output } => with_client(&cluster, |client| async move {
            let tokens = client.tokens().await?;
            emit(out, &TokensView::from(&tokens[..]), output.json)?;
            Ok(ExitCode::SUCCESS)
        }),
        TokenCommand::Revoke {
            id,
            cluster,
            output,
        } => with_client(&cluster, |client| async move {
            client.revoke_token(&id).await?;
            emit(out, &ChangedView::token_revoked(&id), output.json)?;
            Ok(ExitCode::SUCCESS)
        }),
    }
}
