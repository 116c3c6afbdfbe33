//! Running clusterctl in-process, as the binary would run.

use cluster_cli::Env;

/// What one clusterctl invocation did.
#[derive(Debug)]
pub struct Ctl {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
}

impl Ctl {
    /// The stdout parsed as JSON; panics with the output when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub fn ok(self) -> Ctl {
        assert_eq!(
            self.code, 0,
            "clusterctl failed:\n{}\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs `clusterctl ARGS` against `master` with an otherwise empty
/// environment.
pub async fn ctl(master: &str, args: &[&str]) -> Ctl {
    let env = Env {
        master: Some(master.to_owned()),
        ..Env::for_tests()
    };
    ctl_env(&env, args).await
}

pub async fn ctl_env(env: &Env, args: &[&str]) -> Ctl {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once("clusterctl").chain(args.iter().copied());
    let code = cluster_cli::run(argv, env, &mut out, &mut err).await;
    Ctl {
        code,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}
