-- What each publish attempt sent its channel by the channel's stock rules (issue #18): the
-- listing, the quantity and the rule text that explains it. NULL for attempts that sent
-- nothing (a SKU the channel does not list) and for attempts recorded before.
ALTER TABLE publish_attempts
    ADD COLUMN listing text,
    ADD COLUMN sent_quantity bigint,
    ADD COLUMN rule text;
