'use strict'
module.exports = require('./build/Release/fileops.node')
