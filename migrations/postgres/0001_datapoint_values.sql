-- The current value of each datapoint that has ever been written.
CREATE TABLE datapoint_values (
    key            TEXT   NOT NULL PRIMARY KEY,
    value          TEXT   NOT NULL, -- the value as a JSON literal
    update_time_us BIGINT NOT NULL, -- when it was written: microseconds since the Unix epoch, UTC
    seq            BIGINT NOT NULL  -- the server-wide write sequence number
);
