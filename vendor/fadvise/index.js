'use strict'
module.exports = require('./build/Release/fadvise.node')
