"""The run summary's lines: the chosen step and the blessing's rules."""

from pipeline.summary import format_summary


def test_the_summary_shows_the_chosen_step_and_what_blessing_needs():
  summary = {
      "training": {"best_step": 600, "steps_trained": 1200, "train_steps_budget": 2000,
                   "stopped_early": True, "valid_logloss": 0.52345, "valid_auc": 0.75},
      "metrics": {"auc": 0.74, "logloss_over_base_rate": 0.01, "calibration": 1.3},
      "blessing_rules": ["auc >= 0.6", "logloss_over_base_rate <= 0",
                         "calibration in [0.8, 1.2]"],
      "blessed": False,
      "not_blessed_because": ["logloss_over_base_rate 0.01 > 0", "calibration 1.3"],
      "pushed": False}
  lines = format_summary(summary).splitlines()
  assert lines[0] == ("training: chose step 600 of 1,200 trained (budget 2,000, stopped "
                      "early), valid logloss 0.52345, valid auc 0.75000")
  assert ("blessed:  NO   (needs auc >= 0.6; logloss_over_base_rate <= 0; calibration in "
          "[0.8, 1.2])") in lines
  assert "  because logloss_over_base_rate 0.01 > 0" in lines
  assert lines[-1] == "pushed:   no (the model was not blessed)"


def test_without_a_valid_split_the_summary_says_so():
  summary = {"training": {"best_step": 150, "steps_trained": 150, "train_steps_budget": 150,
                          "stopped_early": False}}
  assert format_summary(summary) == (
      "training: chose step 150 of 150 trained (budget 150), no valid split")
