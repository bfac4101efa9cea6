-- One row every registration start updates first: it serializes the starts (across the nodes on
-- one database), so the start limits are counted and the new registration recorded as one step.
CREATE TABLE xrtc_registration_gate (
    id     BIGINT NOT NULL PRIMARY KEY CHECK (id = 1),
    starts BIGINT NOT NULL
);
INSERT INTO xrtc_registration_gate (id, starts) VALUES (1, 0);
