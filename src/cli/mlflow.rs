//! `lakebuild mlflow sync` and `lakebuild mlflow status`.

use super::MlflowCommand;
use crate::engine::project::Project;
use anyhow::Result;

pub(super) fn run(project: &Project, command: MlflowCommand) -> Result<i32> {
    match command {
        MlflowCommand::Sync => {
            let r = crate::mlflow::sync(project)?;
            println!(
                "MLflow: {} record(s) delivered, {} refused, {} pending",
                r.delivered, r.rejected, r.left
            );
            if let Some(e) = r.error {
                println!("stopped: {e}");
                return Ok(1);
            }
            Ok(if r.rejected > 0 { 1 } else { 0 })
        }
        MlflowCommand::Status => {
            match crate::mlflow::status_line(project) {
                Some(s) => println!("{s}"),
                None => println!("mlflow: nothing pending"),
            }
            Ok(0)
        }
    }
}
