/** The sign-in link over real HTTP on every framework (memory store); link-stores.test.ts runs it on Redis and PostgreSQL. */
import { frameworks } from '../helpers/apps.js';
import { describeLinkContract } from '../helpers/link-contract.js';

for (const [name, makeApp] of frameworks) describeLinkContract(name, makeApp);
