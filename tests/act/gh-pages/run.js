// Runs the gh-pages stand-in: tests/act/actions.py, named by the harness.
const { spawnSync } = require('child_process');
const script = process.env.ACT_HARNESS_ACTIONS;
if (!script) {
  console.log('::error::ACT_HARNESS_ACTIONS is not set: run me under tests/act_harness.py');
  process.exit(1);
}
const result = spawnSync('python3', [script, 'gh-pages'], { stdio: 'inherit' });
process.exit(result.status === null ? 1 : result.status);
