-- The live job holding a unique key (enqueue of a duplicate returns its id).
SELECT id FROM /* TEMPLATE: schema */jobs WHERE unique_key = $1::text
