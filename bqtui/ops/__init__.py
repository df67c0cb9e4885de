"""Operations on exports: setup, the permission check, verify and repair, status, schedule.

May import: core, models, source, destination, state, pipeline, stage."""
