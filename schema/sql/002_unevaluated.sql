-- cerberus schema 2. Transitions written by `cerberus emit` while no daemon listened: the
-- daemon evaluates them against the rules when it starts, then deletes their rows here in
-- the same transaction as the alert changes they caused, so each is evaluated once.
CREATE TABLE unevaluated (
    transition_id INTEGER PRIMARY KEY
);

-- A pruned or deleted transition has nothing left to evaluate.
CREATE TRIGGER transitions_delete_unevaluated AFTER DELETE ON transitions
BEGIN
    DELETE FROM unevaluated WHERE transition_id = old.id;
END;
