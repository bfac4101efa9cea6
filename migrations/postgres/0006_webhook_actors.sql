-- Webhook subscriptions read as the actor that made them.
--
-- Who made a subscription (JSON; NULL before this migration: read as anonymous until replaced),
-- and whether that actor reads every subject (admins: portal items and signed calls).
ALTER TABLE webhook_subscriptions ADD COLUMN actor TEXT;
ALTER TABLE webhook_subscriptions ADD COLUMN sees_all BOOLEAN NOT NULL DEFAULT FALSE;
-- What each delivery's event is about, checked against the subscription's actor at delivery.
ALTER TABLE webhook_deliveries ADD COLUMN subject TEXT NOT NULL DEFAULT '';
-- webhook_deliveries.state gains 4: withheld (the subscription's actor may not read the event).
