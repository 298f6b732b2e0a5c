DROP INDEX events_unsequenced_idx;
