DROP TABLE transactions;
DROP TABLE ledger_postings;
DROP TABLE journal_entries;
DROP TABLE ledger_accounts;
