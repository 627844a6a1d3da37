//! `concord sim SCENARIO --actions session.json`: rebuild a session saved from the interactive
//! page – the same seed and settings, the logged actions at their places – without a browser, and
//! judge the run as `concord sim` judges any other.

use concord_sim::protocols::ProtocolVisitor;
use concord_sim::steering::{self, SteeringLog};
use concord_sim::{RunOptions, Scenario, SimProtocol, Simulation};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

/// `concord sim SCENARIO --actions session.json`: rebuild a saved session (to the place it was
/// saved at, or to the end of the run) and judge it.
pub struct Replay {
    pub log: SteeringLog,
    pub trace: Option<Box<dyn Write + Send>>,
    pub hash_trace: bool,
}

impl ProtocolVisitor for Replay {
    type Output = Result<concord_sim::RunReport, String>;

    fn visit<P: SimProtocol>(self, scenario: &Arc<Scenario<P::Config>>) -> Self::Output {
        let scenario = Arc::new(self.log.settings.apply(scenario));
        let options = RunOptions {
            seed: self.log.seed,
            trace: self.trace,
            hash_trace: self.hash_trace,
            ..Default::default()
        };
        let started = Instant::now();
        let mut sim = Simulation::<P>::new(scenario, options);
        sim.start();
        steering::replay(&mut sim, &self.log.actions).map_err(|e| e.to_string())?;
        Ok(match self.log.saved_at {
            Some(place) => {
                steering::seek(&mut sim, place)
                    .map_err(|e| format!("the place the session was saved at: {e}"))?;
                sim.stop_here(started)
            }
            None => sim.run_to_end(started),
        })
    }
}
