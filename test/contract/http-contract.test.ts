/** The HTTP contract of CONTRACT.md, run once per framework over real sockets (memory store). */
import { frameworks } from '../helpers/apps.js';
import { describeHttpContract, describeNoCodeInResponses } from '../helpers/http-contract.js';

for (const [framework, makeApp, contract] of frameworks) describeHttpContract(framework, makeApp, contract);
describeNoCodeInResponses();
